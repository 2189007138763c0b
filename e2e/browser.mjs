// Logs in through authflow's browser page (/if/flow/{slug}/) with headless Chromium
// driven by playwright-core: identification → wrong password (error shown next to the
// field) → right password → redirected to `next`.
//
// Starts nothing itself. Environment:
//   AUTHFLOW_URL                  server base URL, e.g. http://127.0.0.1:19080
//   AUTHFLOW_BOOTSTRAP_PASSWORD   akadmin's password
//   CHROMIUM                      browser binary (default /usr/bin/chromium)
//
// Screenshots go to e2e/artifacts/. Exits 0 on success, 1 otherwise.

import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { chromium } from "playwright-core";

const BASE = (process.env.AUTHFLOW_URL || "").replace(/\/+$/, "");
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
      // The 404 of /done-marker is expected; anything else is worth a look.
      if (m.type() === "error" && !/404/.test(m.text())) consoleErrors.push(m.text());
    });
    try {
      await run(page);
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
