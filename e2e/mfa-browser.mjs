// Multi-factor authentication through the flow page, in headless Chromium, against the
// real server with authentik's blueprints flows-login-2fa (identification → password →
// authenticator_validate → login) and the TOTP, static and WebAuthn setup flows:
//   1. log in with the password alone (no device yet: validate lets the user through);
//   2. TOTP setup through the page: the QR code (decoded with zbarimg) carries the same
//      secret the page shows as text; the code comes from Debian's oathtool, not authflow;
//   3. static codes through the page;
//   4. a passkey registered through the page with Chromium's virtual authenticator
//      (DevTools WebAuthn.enable / addVirtualAuthenticator: ctap2, internal, resident key,
//      user verification);
//   5. log out; log in with a TOTP code: a wrong code is refused next to the field, the
//      right one (another time step than the setup's) logs in;
//   6. log out; log in with the passkey (navigator.credentials.get); log out; log in
//      with the passkey alone through the identification stage's passwordless link
//      (e2e/blueprints/zz-e2e-passwordless.yaml);
//   7. log out; log in with a static code; log out; the same code again is refused.
//
// Starts nothing itself. Environment:
//   AUTHFLOW_URL                  server base URL (its port is used on `localhost`:
//                                 WebAuthn needs a domain in a secure context)
//   AUTHFLOW_BOOTSTRAP_PASSWORD   akadmin's password
//   CHROMIUM                      browser binary (default /usr/bin/chromium)
// Exits 0 on success, 1 otherwise. Screenshots: e2e/artifacts/mfa-*.png.

import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { chromium } from "playwright-core";

const RAW_BASE = (process.env.AUTHFLOW_URL || "").replace(/\/+$/, "");
const PASSWORD = process.env.AUTHFLOW_BOOTSTRAP_PASSWORD || "";
const EXECUTABLE = process.env.CHROMIUM || "/usr/bin/chromium";
if (!RAW_BASE || !PASSWORD) {
  console.error("mfa-browser: set AUTHFLOW_URL and AUTHFLOW_BOOTSTRAP_PASSWORD");
  process.exit(2);
}
const baseUrl = new URL(RAW_BASE);
baseUrl.hostname = "localhost";
const BASE = baseUrl.toString().replace(/\/+$/, "");
const MOUNT = baseUrl.pathname.replace(/\/+$/, "");

const ARTIFACTS = join(dirname(fileURLToPath(import.meta.url)), "artifacts");
mkdirSync(ARTIFACTS, { recursive: true });
const TIMEOUT = 15_000;

class CheckFailed extends Error {}
const ok = (step) => console.log(`  ok   ${step}`);
const check = (cond, message) => {
  if (!cond) throw new CheckFailed(message);
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const done = (page) => page.waitForURL((u) => u.pathname === "/done-marker", { timeout: TIMEOUT });

/** A TOTP code computed by oathtool (RFC 6238), for the time step `step`. */
function oathtool(secret, digits, period, step) {
  const out = execFileSync(
    "oathtool",
    ["--totp=SHA1", "--base32", `--digits=${digits}`, `--time-step-size=${period}s`, "-N", `@${step * period}`, secret],
    { encoding: "utf8" },
  );
  return out.trim();
}

/** Whether the browser's session is akadmin's (the admin-only flow list answers 200). */
async function loggedIn(page) {
  const status = await page.evaluate(
    async (mount) => (await fetch(mount + "/api/v3/flows/instances/", { credentials: "same-origin" })).status,
    MOUNT,
  );
  return status === 200;
}

/** Identification and password on the login flow; leaves the page at what follows. */
async function passwordSteps(page) {
  await page.goto(`${BASE}/if/flow/default-authentication-flow/?next=/done-marker`, { waitUntil: "domcontentloaded" });
  const uid = page.locator('input[name="uid_field"]');
  await uid.waitFor({ state: "visible", timeout: TIMEOUT });
  await uid.fill("akadmin");
  await page.locator("#submit").click();
  const password = page.locator('input[name="password"]');
  await password.waitFor({ state: "visible", timeout: TIMEOUT });
  await password.fill(PASSWORD);
  await page.locator("#submit").click();
}

async function logout(page) {
  await page.goto(`${BASE}/if/flow/default-invalidation-flow/`, { waitUntil: "domcontentloaded" });
  await page.getByText("Log out?").first().waitFor({ state: "visible", timeout: TIMEOUT });
  await Promise.all([page.waitForURL((u) => u.pathname === "/", { timeout: TIMEOUT }), page.locator("#submit").click()]);
  check(!(await loggedIn(page)), "still logged in after logout");
}

/** At the validate stage: the device buttons offered. */
async function devicesOffered(page) {
  await page.locator("button[id^=device-]").first().waitFor({ state: "visible", timeout: TIMEOUT }).catch(() => {
    throw new CheckFailed("the login did not ask for a second factor");
  });
  return (await page.locator("button[id^=device-]").evaluateAll((bs) => bs.map((b) => b.id.slice("device-".length)))).sort();
}

async function enterCode(page, code) {
  const field = page.locator('input[name="code"]');
  await field.waitFor({ state: "visible", timeout: TIMEOUT });
  await field.fill(code);
  await page.locator("#submit").click();
}

async function run(page, cdp, authenticatorId) {
  // 1. No device yet.
  await passwordSteps(page);
  await done(page);
  check(await loggedIn(page), "the password login did not log in");
  ok("login with the password alone while akadmin has no device");

  // 2. TOTP setup.
  await page.goto(`${BASE}/if/flow/default-authenticator-totp-setup/?next=/done-marker`, { waitUntil: "domcontentloaded" });
  const qr = page.locator("#totp-qr");
  await qr.waitFor({ state: "visible", timeout: TIMEOUT });
  const png = join(ARTIFACTS, "mfa-totp-qr.png");
  await qr.screenshot({ path: png });
  await page.screenshot({ path: join(ARTIFACTS, "mfa-1-totp-setup.png"), fullPage: true });
  const configUrl = execFileSync("zbarimg", ["--raw", "-q", png], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  const otp = new URL(configUrl);
  check(otp.protocol === "otpauth:" && otp.host === "totp", `the QR code holds ${configUrl.replace(/secret=[^&]*/, "secret=…")}`);
  const secret = otp.searchParams.get("secret") || "";
  const digits = Number(otp.searchParams.get("digits") || 6);
  const period = Number(otp.searchParams.get("period") || 30);
  check(secret.length >= 26, "the TOTP secret has fewer than 128 bits");
  check((await page.locator("#totp-secret").textContent()) === secret, "the secret shown is not the QR code's");
  ok(`TOTP setup: the page's QR code decodes to an otpauth URL (${digits} digits, ${period} s) whose secret the page shows`);
  const setupStep = Math.floor(Date.now() / 1000 / period);
  await Promise.all([done(page), enterCode(page, oathtool(secret, digits, period, setupStep))]);
  ok("TOTP setup: the code computed by oathtool confirms the device");

  // 3. Static codes.
  await page.goto(`${BASE}/if/flow/default-authenticator-static-setup/?next=/done-marker`, { waitUntil: "domcontentloaded" });
  await page.locator("#static-codes").waitFor({ state: "visible", timeout: TIMEOUT });
  const codes = await page.locator("#static-codes li").allTextContents();
  check(codes.length > 0 && new Set(codes).size === codes.length, `static codes: ${codes.length}, distinct: ${new Set(codes).size}`);
  await page.screenshot({ path: join(ARTIFACTS, "mfa-2-static-setup.png"), fullPage: true });
  await Promise.all([done(page), page.locator("#submit").click()]);
  ok(`static setup: ${codes.length} distinct codes shown and saved`);

  // 4. A passkey.
  await page.goto(`${BASE}/if/flow/default-authenticator-webauthn-setup/?next=/done-marker`, { waitUntil: "domcontentloaded" });
  await done(page).catch(async (e) => {
    await page.screenshot({ path: join(ARTIFACTS, "mfa-3-webauthn-setup.png"), fullPage: true });
    throw new CheckFailed(`the passkey registration did not finish: ${(await page.locator("#app").textContent())?.trim()} (${e.message})`);
  });
  const { credentials } = await cdp.send("WebAuthn.getCredentials", { authenticatorId });
  check(credentials.length === 1, `the virtual authenticator holds ${credentials.length} credentials`);
  ok("WebAuthn setup: a passkey registered through the page (navigator.credentials.create, virtual authenticator)");
  await logout(page);

  // 5. TOTP login.
  await passwordSteps(page);
  const offered = await devicesOffered(page);
  check(JSON.stringify(offered) === JSON.stringify(["static", "totp", "webauthn"]), `devices offered: ${offered}`);
  await page.screenshot({ path: join(ARTIFACTS, "mfa-4-validate.png"), fullPage: true });
  ok("login: after the password the page offers the three devices");
  await page.locator("#device-totp").click();
  const loginStep = Math.max(setupStep + 1, Math.floor(Date.now() / 1000 / period));
  const right = oathtool(secret, digits, period, loginStep);
  const wrong = String((Number(right) + 1) % 10 ** digits).padStart(digits, "0");
  await enterCode(page, wrong);
  await page.locator('.error[data-field="code"]').first().waitFor({ state: "visible", timeout: TIMEOUT }).catch(() => {
    throw new CheckFailed("a wrong TOTP code shows no error next to the field");
  });
  check(!(await loggedIn(page)), "a wrong TOTP code logged in");
  ok("login: a wrong TOTP code is refused next to the code field");
  await sleep(1500); // the MFA throttle: 1 s after one failure
  await Promise.all([done(page), enterCode(page, right)]);
  check(await loggedIn(page), "the TOTP login did not log in");
  ok("login: the TOTP code from oathtool (a later time step than the setup's) logs in");
  await logout(page);

  // 6. Passkey login.
  await passwordSteps(page);
  await devicesOffered(page);
  await Promise.all([done(page), page.locator("#device-webauthn").click()]).catch(async (e) => {
    throw new CheckFailed(`the passkey login did not finish: ${(await page.locator("#app").textContent())?.trim()} (${e.message})`);
  });
  check(await loggedIn(page), "the passkey login did not log in");
  ok("login: the passkey signs the device challenge (navigator.credentials.get) and logs in");
  await logout(page);

  // 6b. Passwordless: the identification stage's link, then the passkey alone.
  await page.goto(`${BASE}/if/flow/default-authentication-flow/`, { waitUntil: "domcontentloaded" });
  const link = page.locator("#passwordless-link");
  await link.waitFor({ state: "visible", timeout: TIMEOUT }).catch(() => {
    throw new CheckFailed("the identification stage shows no passwordless link");
  });
  await Promise.all([
    page.waitForURL((u) => u.pathname === `${MOUNT}/if/flow/e2e-passwordless/`, { timeout: TIMEOUT }),
    link.click(),
  ]);
  await page.waitForURL((u) => !u.pathname.includes("e2e-passwordless"), { timeout: TIMEOUT }).catch(async (e) => {
    throw new CheckFailed(`the passwordless login did not finish: ${(await page.locator("#app").textContent())?.trim()} (${e.message})`);
  });
  check(await loggedIn(page), "the passwordless login did not log in");
  ok("passwordless: the identification stage links to the passwordless flow; the passkey alone logs in");
  await logout(page);

  // 7. Static code, once.
  await passwordSteps(page);
  await devicesOffered(page);
  await page.locator("#device-static").click();
  await Promise.all([done(page), enterCode(page, codes[0])]);
  check(await loggedIn(page), "the static code did not log in");
  ok("login: a static code logs in");
  await logout(page);
  await passwordSteps(page);
  await devicesOffered(page);
  await page.locator("#device-static").click();
  await enterCode(page, codes[0]);
  await page.locator('.error[data-field="code"]').first().waitFor({ state: "visible", timeout: TIMEOUT }).catch(() => {
    throw new CheckFailed("a used static code shows no error");
  });
  check(!(await loggedIn(page)), "a used static code logged in again");
  ok("login: the same static code again is refused");
}

async function main() {
  console.log(`mfa-browser: ${BASE} with ${EXECUTABLE}`);
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
      // 404: /done-marker and /; 403: the logged-out admin check.
      if (m.type() === "error" && !/40[34]/.test(m.text())) problems.push(m.text());
    });
    const cdp = await context.newCDPSession(page);
    await cdp.send("WebAuthn.enable");
    const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
      options: { protocol: "ctap2", transport: "internal", hasResidentKey: true, hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true },
    });
    try {
      await run(page, cdp, authenticatorId);
    } catch (e) {
      await page.screenshot({ path: join(ARTIFACTS, "mfa-failure.png"), fullPage: true }).catch(() => {});
      throw e;
    }
    check(problems.length === 0, `page errors: ${problems.join(" | ")}`);
    ok("no script errors on the page");
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  }
  console.log("mfa-browser: all checks passed");
}

try {
  await main();
} catch (e) {
  console.error(`mfa-browser: FAILED: ${e instanceof CheckFailed ? e.message : e?.stack || e}`);
  process.exit(1);
}
