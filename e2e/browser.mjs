// Logs in through authflow's browser page (/if/flow/{slug}/) with headless Chromium
// driven by playwright-core: identification → wrong password (error shown next to the
// field) → right password → redirected to `next`. Then, logged in, visits an attacker
// page on another site (a second loopback address, so cross-site) that auto-clicks
// links to the unenrollment flow, its executor API and the cancel → invalidation chain:
// the account and the login survive. Finally logs out through the page's confirmation.
//
// Starts nothing itself. Environment:
//   AUTHFLOW_URL                  server base URL, e.g. http://127.0.0.1:19080, with the
//                                 prefix authflow is mounted under if any (…:19080/auth)
//   AUTHFLOW_BOOTSTRAP_PASSWORD   akadmin's password
//   CHROMIUM                      browser binary (default /usr/bin/chromium)
//
// Screenshots go to e2e/artifacts/. Exits 0 on success, 1 otherwise.

import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { chromium } from "playwright-core";

const BASE = (process.env.AUTHFLOW_URL || "").replace(/\/+$/, "");
// The mount prefix ("" or "/auth"): every link the server gives out starts with it.
const MOUNT = BASE ? new URL(BASE).pathname.replace(/\/+$/, "") : "";
const PASSWORD = process.env.AUTHFLOW_BOOTSTRAP_PASSWORD || "";
const EXECUTABLE = process.env.CHROMIUM || "/usr/bin/chromium";
if (!BASE || !PASSWORD) {
  console.error("browser: set AUTHFLOW_URL and AUTHFLOW_BOOTSTRAP_PASSWORD");
  process.exit(2);
}

const ARTIFACTS = join(dirname(fileURLToPath(import.meta.url)), "artifacts");
mkdirSync(ARTIFACTS, { recursive: true });
const TIMEOUT = 15_000;

class CheckFailed extends Error {}

function ok(step) {
  console.log(`  ok   ${step}`);
}

async function run(page) {
  const start = `${BASE}/if/flow/default-authentication-flow/?next=/done-marker`;
  await page.goto(start, { waitUntil: "domcontentloaded" });

  const uid = page.locator('input[name="uid_field"]');
  await uid.waitFor({ state: "visible", timeout: TIMEOUT });
  ok("identification form rendered");
  await page.screenshot({ path: join(ARTIFACTS, "1-identification.png"), fullPage: true });
  await uid.fill("akadmin");
  await page.locator("#submit").click();

  let password = page.locator('input[name="password"]');
  await password.waitFor({ state: "visible", timeout: TIMEOUT });
  ok("password form rendered");
  const pending = await page.locator(".user span").textContent({ timeout: TIMEOUT }).catch(() => null);
  if (!pending) throw new CheckFailed("password stage does not show the pending user");
  ok(`password stage shows pending user "${pending}"`);

  await password.fill(`${PASSWORD}-wrong`);
  await page.locator("#submit").click();
  const error = page.locator('.error[data-field="password"]');
  await error.first().waitFor({ state: "visible", timeout: TIMEOUT }).catch(() => {
    throw new CheckFailed("a wrong password shows no error next to the password field");
  });
  const errorText = (await error.first().textContent())?.trim() || "";
  if (!errorText) throw new CheckFailed("the password error is empty");
  // The error must sit in the same field wrapper as the password input.
  const nextToField = await page.evaluate(() => {
    const input = document.querySelector('input[name="password"]');
    const err = document.querySelector('.error[data-field="password"]');
    return Boolean(input && err && input.parentElement === err.parentElement);
  });
  if (!nextToField) throw new CheckFailed("the password error is not next to the password field");
  ok(`wrong password shows "${errorText}" next to the field`);
  if (new URL(page.url()).pathname.endsWith("/done-marker")) {
    throw new CheckFailed("a wrong password redirected to next");
  }
  await page.screenshot({ path: join(ARTIFACTS, "2-wrong-password.png"), fullPage: true });

  password = page.locator('input[name="password"]');
  await password.fill(PASSWORD);
  await Promise.all([
    page.waitForURL((url) => url.pathname === "/done-marker", { timeout: TIMEOUT }),
    page.locator("#submit").click(),
  ]).catch((e) => {
    throw new CheckFailed(`not redirected to /done-marker (at ${page.url()}): ${e.message}`);
  });
  ok(`redirected to ${page.url()}`);

  const cookies = await page.context().cookies(BASE);
  const names = cookies.map((c) => c.name);
  if (!names.includes("authflow_session") || !names.includes("authentik_csrf")) {
    throw new CheckFailed(`logged-in browser lacks session/CSRF cookies: ${JSON.stringify(names)}`);
  }
  ok("browser holds authflow_session and authentik_csrf");
}

/** An attacker's site: each path serves a page that auto-clicks a link into authflow. */
async function attackerSite() {
  const targets = {
    "/unenroll": "/if/flow/default-unenrollment-flow/",
    "/api": "/api/v3/flows/executor/default-unenrollment-flow/?query=",
    "/cancel": "/flows/-/cancel/",
  };
  const server = createServer((req, res) => {
    const target = targets[new URL(req.url, "http://attacker").pathname];
    if (!target) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end(`<!doctype html><a id="go" href="${BASE}${target}">You won!</a><script>document.getElementById("go").click();</script>`);
  });
  // 127.0.0.2 is another site than 127.0.0.1 (an IP address is its own site).
  const host = new URL(BASE).hostname === "127.0.0.2" ? "127.0.0.3" : "127.0.0.2";
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, host, resolve);
  });
  return { server, url: `http://${host}:${server.address().port}` };
}

/** Whether the browser's session is akadmin's (the admin-only flow list answers 200). */
async function adminStatus(page) {
  return page.evaluate(
    async (mount) => (await fetch(mount + "/api/v3/flows/instances/", { credentials: "same-origin" })).status,
    MOUNT,
  );
}

async function crossSite(page) {
  const attacker = await attackerSite();
  try {
    const executorCalls = [];
    const onRequest = (r) => {
      if (r.url().includes("/api/v3/flows/executor/")) executorCalls.push(r.url());
    };
    page.on("request", onRequest);

    // 1. A cross-site link to the unenrollment page: the page waits for a click.
    await page.goto(`${attacker.url}/unenroll`, { waitUntil: "domcontentloaded" });
    await page.waitForURL((u) => u.pathname === `${MOUNT}/if/flow/default-unenrollment-flow/`, { timeout: TIMEOUT });
    await page.locator("#cross-site").waitFor({ state: "visible", timeout: TIMEOUT }).catch(() => {
      throw new CheckFailed("the page reached from another site did not wait for a click");
    });
    await page.waitForTimeout(500);
    if (executorCalls.length > 0) throw new CheckFailed(`the page called the executor by itself: ${executorCalls}`);
    if ((await adminStatus(page)) !== 200) throw new CheckFailed("akadmin is gone after a cross-site link to unenrollment");
    ok("cross-site link to /if/flow/default-unenrollment-flow/: the page waits, akadmin still exists");
    await page.screenshot({ path: join(ARTIFACTS, "3-cross-site.png"), fullPage: true });

    // 2. Even after "Continue" the flow only asks; nothing is deleted without the answer.
    await page.locator("#start").click();
    await page.getByText("Delete your account?").first().waitFor({ state: "visible", timeout: TIMEOUT }).catch(() => {
      throw new CheckFailed("unenrollment did not ask for confirmation");
    });
    if ((await adminStatus(page)) !== 200) throw new CheckFailed("akadmin is gone before confirming");
    ok('unenrollment asks "Delete your account?"; akadmin still exists');
    await page.screenshot({ path: join(ARTIFACTS, "4-confirm-delete.png"), fullPage: true });
    page.off("request", onRequest);

    // 3. A cross-site link straight to the executor API is refused.
    const [api] = await Promise.all([
      page.waitForResponse((r) => r.url().includes("/api/v3/flows/executor/default-unenrollment-flow/"), { timeout: TIMEOUT }),
      page.goto(`${attacker.url}/api`, { waitUntil: "domcontentloaded" }),
    ]);
    if (api.status() !== 403) throw new CheckFailed(`cross-site executor GET answered ${api.status()}`);
    if ((await adminStatus(page)) !== 200) throw new CheckFailed("akadmin is gone after a cross-site executor GET");
    ok("cross-site link to the executor API: 403, akadmin still exists");

    // 4. cancel → default/invalidation → the invalidation page: still logged in.
    await page.goto(`${attacker.url}/cancel`, { waitUntil: "domcontentloaded" });
    await page.waitForURL((u) => u.pathname === `${MOUNT}/if/flow/default-invalidation-flow/`, { timeout: TIMEOUT });
    await page.locator("#cross-site").waitFor({ state: "visible", timeout: TIMEOUT });
    await page.waitForTimeout(500);
    if ((await adminStatus(page)) !== 200) throw new CheckFailed("a cross-site link through /flows/-/cancel/ logged out");
    ok("cross-site link to /flows/-/cancel/: still logged in");
  } finally {
    attacker.server.close();
  }

  // 5. The user's own logout: the page asks, the click on the confirmation logs out.
  await page.goto(`${BASE}/if/flow/default-invalidation-flow/`, { waitUntil: "domcontentloaded" });
  await page.getByText("Log out?").first().waitFor({ state: "visible", timeout: TIMEOUT }).catch(() => {
    throw new CheckFailed("logout did not ask for confirmation");
  });
  if ((await adminStatus(page)) !== 200) throw new CheckFailed("opening the logout page logged out");
  await Promise.all([
    page.waitForURL((u) => u.pathname === "/", { timeout: TIMEOUT }),
    page.locator("#submit").click(),
  ]);
  if ((await adminStatus(page)) !== 403) throw new CheckFailed("confirming the logout did not log out");
  ok('logout asks "Log out?"; confirming logs out');
}

async function main() {
  console.log(`browser: ${BASE} with ${EXECUTABLE}`);
  const profile = mkdtempSync(join(tmpdir(), "authflow-e2e-chromium-"));
  // A fresh profile: playwright passes it to Chromium as --user-data-dir.
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: EXECUTABLE,
    headless: true,
    viewport: { width: 800, height: 600 },
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  const consoleErrors = [];
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    page.on("pageerror", (e) => consoleErrors.push(String(e)));
    page.on("console", (m) => {
      // The 404s of /done-marker and / and the refused cross-site executor GET (403)
      // are expected; anything else (a CSP violation, a script error) is worth a look.
      if (m.type() === "error" && !/40[34]/.test(m.text())) consoleErrors.push(m.text());
    });
    try {
      await run(page);
      await crossSite(page);
    } catch (e) {
      await page.screenshot({ path: join(ARTIFACTS, "failure.png"), fullPage: true }).catch(() => {});
      throw e;
    }
    if (consoleErrors.length > 0) {
      throw new CheckFailed(`page errors: ${consoleErrors.join(" | ")}`);
    }
    ok("no script errors on the page");
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  }
  console.log(`browser: all checks passed (screenshots in ${ARTIFACTS})`);
}

try {
  await main();
} catch (e) {
  console.error(`browser: FAILED: ${e instanceof CheckFailed ? e.message : e?.stack || e}`);
  process.exit(1);
}
