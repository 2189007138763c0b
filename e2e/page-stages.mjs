// The flow page (/if/flow/{slug}/, served by the real server with its real CSP) renders
// every MFA, email and captcha challenge and posts what authentik's executor expects.
// The executor API is answered by this script (playwright's request routing) with the
// wire shapes of shared/authentik-flow-executor.openapi.yaml, so the page is checked on
// its own, whatever stages the server has:
//   - TOTP setup: the inline-SVG QR code decodes (zbarimg) to `config_url`; the secret
//     is shown as text; the code is posted; an error is shown next to the code field;
//   - static codes: every code listed, the confirmation posted;
//   - WebAuthn registration with Chromium's virtual authenticator (DevTools
//     `WebAuthn.addVirtualAuthenticator`): the posted `response` is the credential JSON
//     (clientDataJSON of type webauthn.create over the challenge, from this origin);
//   - authenticator_validate: device choice posts `selected_challenge`, then the code;
//     WebAuthn assertion of the credential registered before (`webauthn`); a choice of
//     configuration stages posts `selected_stage`;
//   - email: "check your mail", the resend posts the empty response;
//   - captcha: a provider script on another origin is refused by the page's CSP when
//     the session is not at a captcha stage (the page says so; no request reaches it);
//   - identification's passwordless and recovery links.
//
// Environment as browser.mjs (AUTHFLOW_URL, CHROMIUM). WebAuthn needs a secure context
// with a domain: the page is opened on `localhost` at AUTHFLOW_URL's port.
// Exits 0 on success, 1 otherwise.

import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { chromium } from "playwright-core";

const RAW_BASE = (process.env.AUTHFLOW_URL || "").replace(/\/+$/, "");
const EXECUTABLE = process.env.CHROMIUM || "/usr/bin/chromium";
if (!RAW_BASE) {
  console.error("page-stages: set AUTHFLOW_URL");
  process.exit(2);
}
const baseUrl = new URL(RAW_BASE);
baseUrl.hostname = "localhost";
const BASE = baseUrl.toString().replace(/\/+$/, "");
const ORIGIN = baseUrl.origin;
const PAGE = `${BASE}/if/flow/default-authentication-flow/`;

const ARTIFACTS = join(dirname(fileURLToPath(import.meta.url)), "artifacts");
mkdirSync(ARTIFACTS, { recursive: true });
const TIMEOUT = 15_000;

class CheckFailed extends Error {}
const ok = (step) => console.log(`  ok   ${step}`);
const check = (cond, message) => {
  if (!cond) throw new CheckFailed(message);
};

const b64u = (buf) => Buffer.from(buf).toString("base64url");
const AVATAR = "data:image/svg+xml;base64," + Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"/>').toString("base64");
const FLOW_INFO = { title: "Welcome", background: "", cancel_url: "/flows/-/cancel/", layout: "stacked" };
const challenge = (component, fields) => ({
  flow_info: FLOW_INFO,
  component,
  pending_user: "akadmin",
  pending_user_avatar: AVATAR,
  ...fields,
});
const withErrors = (c, field, text) => ({ ...c, response_errors: { [field]: [{ string: text, code: "invalid" }] } });
const DONE = { component: "xak-flow-redirect", to: "/done-marker", type: "redirect" };

/** Answers the executor API: `current` on GET; on POST records the body and answers `reply(body)`. */
async function mockExecutor(page) {
  const mock = { current: null, reply: null, posts: [], queue: [], waiters: [] };
  await page.route(
    (u) => u.pathname.includes("/api/v3/flows/executor/"),
    async (route) => {
      const req = route.request();
      if (req.method() === "POST") {
        const body = req.postDataJSON();
        mock.posts.push(body);
        const next = mock.reply ? mock.reply(body) : mock.current;
        if (next) mock.current = next;
        const waiter = mock.waiters.shift();
        if (waiter) waiter(body); else mock.queue.push(body);
      }
      await route.fulfill({ status: 200, contentType: "application/json", body: JSON.stringify(mock.current) });
    },
  );
  // The next post not yet looked at (posts queue up: no race with the page).
  mock.nextPost = (what) => new Promise((resolve, reject) => {
    if (mock.queue.length) {
      resolve(mock.queue.shift());
      return;
    }
    const t = setTimeout(() => reject(new CheckFailed(`the page posted nothing (${what || "a response"})`)), TIMEOUT);
    mock.waiters.push((b) => { clearTimeout(t); resolve(b); });
  });
  mock.start = async (c, reply) => {
    mock.current = c;
    mock.reply = reply || null;
    mock.posts = [];
    mock.queue = [];
    await page.goto(PAGE, { waitUntil: "domcontentloaded" });
  };
  return mock;
}

function clientData(credential) {
  return JSON.parse(Buffer.from(credential.response.clientDataJSON, "base64url").toString("utf8"));
}

async function totp(page, mock) {
  const secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
  const url = `otpauth://totp/authentik:akadmin?secret=${secret}&algorithm=SHA1&digits=6&period=30&issuer=authentik`;
  const c = challenge("ak-stage-authenticator-totp", { config_url: url });
  await mock.start(c, (b) => (b.code === "000000" ? withErrors(c, "code", "Code does not match") : DONE));
  const qr = page.locator("#totp-qr");
  await qr.waitFor({ state: "visible", timeout: TIMEOUT });
  const png = join(ARTIFACTS, "page-totp-qr.png");
  await qr.screenshot({ path: png });
  const decoded = execFileSync("zbarimg", ["--raw", "-q", png], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  check(decoded === url, `the QR code decodes to ${JSON.stringify(decoded)}, not config_url`);
  ok("TOTP: the inline-SVG QR code decodes (zbarimg) to config_url");
  check((await page.locator("#totp-secret").textContent()) === secret, "the TOTP secret is not shown as text");
  ok("TOTP: the secret is shown as text");
  await page.screenshot({ path: join(ARTIFACTS, "page-totp.png"), fullPage: true });

  await page.locator('input[name="code"]').fill("000000");
  let post = mock.nextPost("page-stages.mjs:127");
  await page.locator("#submit").click();
  check(JSON.stringify(await post) === JSON.stringify({ component: c.component, code: "000000" }), "the TOTP code post is not {component, code}");
  await page.locator('.error[data-field="code"]').waitFor({ state: "visible", timeout: TIMEOUT });
  check(await page.locator("#totp-qr").isVisible(), "the QR code is gone after a wrong code");
  check((await page.locator('input[name="code"]').inputValue()) === "", "the wrong code stays in the field");
  ok("TOTP: a wrong code shows the error next to the code field, the QR code stays");
  await page.locator('input[name="code"]').fill("123456");
  post = mock.nextPost("page-stages.mjs:135");
  await Promise.all([page.waitForURL((u) => u.pathname === "/done-marker", { timeout: TIMEOUT }), page.locator("#submit").click()]);
  check((await post).code === "123456", "the second code was not posted");
  ok("TOTP: the right code is posted, the flow goes on");
}

async function staticCodes(page, mock) {
  const codes = Array.from({ length: 6 }, () => randomBytes(9).toString("base64url").replace(/[-_]/g, "x").slice(0, 12));
  const c = challenge("ak-stage-authenticator-static", { codes });
  await mock.start(c, () => DONE);
  await page.locator("#static-codes").waitFor({ state: "visible", timeout: TIMEOUT });
  const shown = await page.locator("#static-codes li").allTextContents();
  check(JSON.stringify(shown) === JSON.stringify(codes), `static codes shown: ${JSON.stringify(shown)}`);
  await page.screenshot({ path: join(ARTIFACTS, "page-static.png"), fullPage: true });
  const post = mock.nextPost("page-stages.mjs:149");
  await Promise.all([page.waitForURL((u) => u.pathname === "/done-marker", { timeout: TIMEOUT }), page.locator("#submit").click()]);
  check(JSON.stringify(await post) === JSON.stringify({ component: c.component }), "the static confirmation is not {component}");
  ok("static: every code listed; the confirmation posts {component}");
}

async function webauthnRegister(page, mock) {
  const challengeBytes = randomBytes(32);
  const registration = {
    rp: { id: "localhost", name: "authflow" },
    user: { id: b64u(randomBytes(32)), name: "akadmin", displayName: "authentik Default Admin" },
    challenge: b64u(challengeBytes),
    pubKeyCredParams: [{ type: "public-key", alg: -7 }, { type: "public-key", alg: -257 }],
    timeout: 60000,
    excludeCredentials: [],
    authenticatorSelection: { residentKey: "preferred", requireResidentKey: false, userVerification: "preferred", authenticatorAttachment: null },
    attestation: "none",
  };
  const c = challenge("ak-stage-authenticator-webauthn", { registration });
  const post = mock.nextPost("page-stages.mjs:168");
  await mock.start(c, () => DONE);
  const body = await post;
  check(body.component === c.component && body.response, "the registration post lacks response");
  const cred = body.response;
  const data = clientData(cred);
  check(data.type === "webauthn.create", `clientDataJSON type ${data.type}`);
  check(data.challenge === registration.challenge, "the credential signs another challenge");
  check(data.origin === ORIGIN, `clientDataJSON origin ${data.origin}`);
  check(cred.id === cred.rawId && cred.type === "public-key", "id/rawId/type are not the credential's");
  check(typeof cred.response.attestationObject === "string" && !/[+/=]/.test(cred.response.attestationObject), "attestationObject is not base64url");
  ok("WebAuthn registration: navigator.credentials.create answered by the virtual authenticator; the credential JSON posted as `response`");
  await page.waitForURL((u) => u.pathname === "/done-marker", { timeout: TIMEOUT });
  return cred.id;
}

async function validate(page, mock, credentialId) {
  const assertionChallenge = b64u(randomBytes(32));
  const devices = [
    { device_class: "totp", device_uid: "1", challenge: {}, last_used: null },
    { device_class: "static", device_uid: "2", challenge: {}, last_used: null },
    {
      device_class: "webauthn",
      device_uid: "3",
      challenge: { challenge: assertionChallenge, timeout: 60000, rpId: "localhost", allowCredentials: [{ type: "public-key", id: credentialId }], userVerification: "preferred" },
      last_used: "2026-01-01T00:00:00Z",
    },
  ];
  const c = challenge("ak-stage-authenticator-validate", { device_challenges: devices, configuration_stages: [] });
  const reply = (b) => {
    if (b.selected_challenge && !b.code && !b.webauthn) return c;
    if (b.code === "999999") return withErrors(c, "code", "Invalid Token");
    return DONE;
  };
  await mock.start(c, reply);
  await page.locator("#device-totp").waitFor({ state: "visible", timeout: TIMEOUT });
  check(await page.locator("#device-static").isVisible() && await page.locator("#device-webauthn").isVisible(), "not every device is offered");
  await page.screenshot({ path: join(ARTIFACTS, "page-validate-choice.png"), fullPage: true });
  let post = mock.nextPost("page-stages.mjs:206");
  await page.locator("#device-totp").click();
  const selection = await post;
  check(JSON.stringify(selection) === JSON.stringify({ component: c.component, selected_challenge: devices[0] }), `the device choice posted ${JSON.stringify(selection)}`);
  ok("validate: three devices offered; choosing one posts selected_challenge");
  await page.locator('input[name="code"]').fill("999999");
  post = mock.nextPost("page-stages.mjs:212");
  await page.locator("#submit").click();
  check(JSON.stringify(await post) === JSON.stringify({ component: c.component, code: "999999" }), "the validation code post is not {component, code}");
  await page.locator('.error[data-field="code"]').waitFor({ state: "visible", timeout: TIMEOUT });
  check(await page.locator('input[name="code"]').isVisible(), "the code form is gone after a wrong code");
  ok("validate: the code is posted; a wrong one shows the error and keeps the chosen device");
  await page.locator("#device-back").click();
  post = mock.nextPost("page-stages.mjs:219");
  await page.locator("#device-webauthn").click();
  check((await post).selected_challenge.device_class === "webauthn", "choosing the security key did not post its selected_challenge");
  const assertion = (await mock.nextPost("page-stages.mjs:222")).webauthn;
  check(assertion, "no webauthn assertion posted");
  const data = clientData(assertion);
  check(data.type === "webauthn.get" && data.challenge === assertionChallenge && data.origin === ORIGIN, `assertion clientData ${JSON.stringify(data)}`);
  check(assertion.id === credentialId && assertion.response.signature && assertion.response.authenticatorData, "the assertion is not the registered credential's");
  ok("validate: the security key signs the device challenge (navigator.credentials.get), posted as `webauthn`");
  await page.waitForURL((u) => u.pathname === "/done-marker", { timeout: TIMEOUT });

  const stages = [
    { pk: "6b1a3c8e-0000-4000-8000-000000000001", name: "TOTP setup", verbose_name: "TOTP Authenticator Setup Stage", meta_model_name: "authentik_stages_authenticator_totp.authenticatortotpstage" },
    { pk: "6b1a3c8e-0000-4000-8000-000000000002", name: "WebAuthn setup", verbose_name: "WebAuthn Authenticator Setup Stage", meta_model_name: "authentik_stages_authenticator_webauthn.authenticatorwebauthnstage" },
  ];
  await mock.start(challenge("ak-stage-authenticator-validate", { device_challenges: [], configuration_stages: stages }), () => DONE);
  await page.locator(`#stage-${stages[1].pk}`).waitFor({ state: "visible", timeout: TIMEOUT });
  post = mock.nextPost("page-stages.mjs:236");
  await Promise.all([page.waitForURL((u) => u.pathname === "/done-marker", { timeout: TIMEOUT }), page.locator(`#stage-${stages[1].pk}`).click()]);
  check(JSON.stringify(await post) === JSON.stringify({ component: "ak-stage-authenticator-validate", selected_stage: stages[1].pk }), "the stage choice is not {component, selected_stage}");
  ok("validate: configuration stages offered; choosing one posts selected_stage");
}

async function passwordless(page, mock, credentialId) {
  // No pending user, no allowCredentials: the discoverable credential answers.
  const c = {
    flow_info: FLOW_INFO,
    component: "ak-stage-authenticator-validate",
    device_challenges: [{ device_class: "webauthn", device_uid: "-1", challenge: { challenge: b64u(randomBytes(32)), rpId: "localhost", allowCredentials: [], userVerification: "required" }, last_used: null }],
    configuration_stages: [],
  };
  const post = mock.nextPost("page-stages.mjs:250");
  await mock.start(c, () => DONE);
  const body = await post;
  check(body.webauthn && body.webauthn.id === credentialId, "passwordless: the discoverable credential did not answer");
  check(typeof body.webauthn.response.userHandle === "string", "passwordless: no userHandle in the assertion");
  ok("validate, passwordless: a single WebAuthn device challenge runs at once; the resident credential answers with its userHandle");
  await page.waitForURL((u) => u.pathname === "/done-marker", { timeout: TIMEOUT });
}

async function email(page, mock) {
  const c = { flow_info: FLOW_INFO, component: "ak-stage-email" };
  await mock.start(c);
  await page.locator("#check-mail").waitFor({ state: "visible", timeout: TIMEOUT });
  const post = mock.nextPost("page-stages.mjs:263");
  await page.locator("#submit").click();
  check(JSON.stringify(await post) === JSON.stringify({ component: "ak-stage-email" }), "the resend is not {component}");
  ok('email: "check your mail"; resending posts {component}');
}

async function captchaRefused(page, mock) {
  let hits = 0;
  const server = createServer((req, res) => {
    hits++;
    res.writeHead(200, { "content-type": "text/javascript" }).end("window.turnstile={render(e,o){o.callback('t')}};");
  });
  await new Promise((r) => server.listen(0, "127.0.0.2", r));
  try {
    const jsUrl = `http://127.0.0.2:${server.address().port}/api.js`;
    const c = challenge("ak-stage-captcha", { site_key: "site", js_url: jsUrl, interactive: true });
    let loads = 0;
    const onLoad = () => loads++;
    page.on("domcontentloaded", onLoad);
    await mock.start(c);
    const status = page.locator("#captcha-status.error");
    await status.waitFor({ state: "visible", timeout: TIMEOUT });
    page.off("domcontentloaded", onLoad);
    check(/cannot be loaded/.test(await status.textContent()), "the page does not say the captcha cannot load");
    check(hits === 0, "the provider's script was fetched although the CSP does not admit it");
    check(mock.posts.length === 0, "the page posted a captcha token");
    check(loads === 2, `the page loaded ${loads} times (expected one reload for the policy)`);
    ok("captcha: without a captcha stage in the session the CSP refuses the provider's script; the page reloads once, then says so");
  } finally {
    server.close();
  }
}

async function links(page, mock) {
  const c = {
    flow_info: FLOW_INFO,
    component: "ak-stage-identification",
    user_fields: ["username"],
    password_fields: false,
    primary_action: "Log in",
    passwordless_url: "/if/flow/default-passwordless-flow/",
    recovery_url: "/if/flow/default-recovery-flow/",
    show_source_labels: false,
    sources: [],
  };
  await mock.start(c);
  await page.locator("#passwordless-link").waitFor({ state: "visible", timeout: TIMEOUT });
  check((await page.locator("#passwordless-link").getAttribute("href")) === c.passwordless_url, "passwordless link");
  check((await page.locator("#recovery-link").getAttribute("href")) === c.recovery_url, "recovery link");
  ok("identification: passwordless and recovery links");
}

async function main() {
  console.log(`page-stages: ${BASE} with ${EXECUTABLE}`);
  const profile = mkdtempSync(join(tmpdir(), "authflow-e2e-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: EXECUTABLE,
    headless: true,
    viewport: { width: 800, height: 900 },
    deviceScaleFactor: 2,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const problems = [];
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    page.on("pageerror", (e) => problems.push(String(e)));
    page.on("console", (m) => {
      // 404: /done-marker; the captcha check provokes one CSP refusal.
      if (m.type() === "error" && !/404|Content Security Policy/.test(m.text())) problems.push(m.text());
    });
    const cdp = await context.newCDPSession(page);
    await cdp.send("WebAuthn.enable");
    await cdp.send("WebAuthn.addVirtualAuthenticator", {
      options: { protocol: "ctap2", transport: "internal", hasResidentKey: true, hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true },
    });
    const mock = await mockExecutor(page);
    try {
      await totp(page, mock);
      await staticCodes(page, mock);
      const id = await webauthnRegister(page, mock);
      await validate(page, mock, id);
      await passwordless(page, mock, id);
      await email(page, mock);
      await captchaRefused(page, mock);
      await links(page, mock);
    } catch (e) {
      await page.screenshot({ path: join(ARTIFACTS, "page-stages-failure.png"), fullPage: true }).catch(() => {});
      throw e;
    }
    check(problems.length === 0, `page errors: ${problems.join(" | ")}`);
    ok("no script errors on the page");
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  }
  console.log("page-stages: all checks passed");
}

try {
  await main();
} catch (e) {
  console.error(`page-stages: FAILED: ${e instanceof CheckFailed ? e.message : e?.stack || e}`);
  process.exit(1);
}
