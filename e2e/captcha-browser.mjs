// A captcha stage through the flow page, in headless Chromium, against the real server
// (flow e2e-captcha from e2e/blueprints/zz-e2e-captcha.yaml, built with the `captcha`
// feature). This script is the provider: on 127.0.0.2 (another origin than the page's)
// it serves a Turnstile-like widget script and the siteverify endpoint.
//   - at the dummy stage before the captcha the page's policy does not admit the
//     provider; when the captcha challenge arrives the page loads itself once more and
//     the server's policy then admits exactly the provider's origin;
//   - the widget renders, its token is posted, the server verifies it at siteverify with
//     the stage's secret, and the flow goes on to the next stage.
//
// Environment: AUTHFLOW_URL, CHROMIUM as browser.mjs; AUTHFLOW_E2E_CAPTCHA_PORT, the port
// the server's blueprint points its captcha stage at (js_url, api_url on 127.0.0.2).
// Exits 0 on success, 1 otherwise.

import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { chromium } from "playwright-core";

const BASE = (process.env.AUTHFLOW_URL || "").replace(/\/+$/, "");
const PORT = Number(process.env.AUTHFLOW_E2E_CAPTCHA_PORT || 0);
const EXECUTABLE = process.env.CHROMIUM || "/usr/bin/chromium";
if (!BASE || !PORT) {
  console.error("captcha-browser: set AUTHFLOW_URL and AUTHFLOW_E2E_CAPTCHA_PORT");
  process.exit(2);
}
const PROVIDER = `http://127.0.0.2:${PORT}`;
const ARTIFACTS = join(dirname(fileURLToPath(import.meta.url)), "artifacts");
mkdirSync(ARTIFACTS, { recursive: true });
const TIMEOUT = 15_000;
const TOKEN = "e2e-good-token";

class CheckFailed extends Error {}
const ok = (step) => console.log(`  ok   ${step}`);
const check = (cond, message) => {
  if (!cond) throw new CheckFailed(message);
};

const WIDGET = `window.turnstile = { render(el, opts) {
  const b = document.createElement("button");
  b.type = "button"; b.id = "stub-captcha"; b.textContent = "I am human (" + opts.sitekey + ")";
  b.addEventListener("click", () => opts.callback(${JSON.stringify(TOKEN)}));
  el.appendChild(b);
} };`;

async function provider() {
  const seen = { script: 0, verify: [] };
  const server = createServer((req, res) => {
    const path = new URL(req.url, PROVIDER).pathname;
    if (req.method === "GET" && path === "/api.js") {
      seen.script++;
      res.writeHead(200, { "content-type": "text/javascript" }).end(WIDGET);
      return;
    }
    if (req.method === "POST" && path === "/siteverify") {
      let body = "";
      req.on("data", (d) => (body += d));
      req.on("end", () => {
        const form = Object.fromEntries(new URLSearchParams(body));
        seen.verify.push(form);
        const good = form.secret === "e2e-secret-key" && form.response === TOKEN;
        res.writeHead(200, { "content-type": "application/json" })
          .end(JSON.stringify(good ? { success: true } : { success: false, "error-codes": ["invalid-input-response"] }));
      });
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(PORT, "127.0.0.2", resolve);
  });
  return { server, seen };
}

async function run(page, seen) {
  let loads = 0;
  page.on("domcontentloaded", () => loads++);
  const policies = [];
  page.on("response", (r) => {
    if (r.url().includes("/if/flow/e2e-captcha/")) policies.push(r.headers()["content-security-policy"] || "");
  });
  await page.goto(`${BASE}/if/flow/e2e-captcha/`, { waitUntil: "domcontentloaded" });
  // The dummy stage before the captcha: the page's policy does not admit the provider.
  await page.getByText("e2e-before-captcha").first().waitFor({ state: "visible", timeout: TIMEOUT });
  check(policies.length === 1 && !policies[0].includes(PROVIDER), `policy before the captcha stage: ${policies[0]}`);
  await page.locator("#submit").click();
  const widget = page.locator("#stub-captcha");
  await widget.waitFor({ state: "visible", timeout: TIMEOUT }).catch(async () => {
    throw new CheckFailed(`the widget did not render: ${(await page.locator("#app").textContent())?.trim()}`);
  });
  check(loads === 2, `the page loaded ${loads} times (expected: once more for the policy)`);
  check(policies.length === 2 && !policies[0].includes(PROVIDER), `first policy: ${policies[0]}`);
  check(policies[1].includes(`script-src 'self' 'nonce-`) && policies[1].includes(` ${PROVIDER};`) && policies[1].includes(`frame-src 'self' ${PROVIDER};`), `second policy: ${policies[1]}`);
  check(seen.script === 1, `the provider's script was fetched ${seen.script} times`);
  ok("the page reloads once; the server's policy then admits the provider's origin only; the widget renders");
  await page.screenshot({ path: join(ARTIFACTS, "captcha-widget.png"), fullPage: true });

  await widget.click();
  await page.getByText("e2e-after-captcha").first().waitFor({ state: "visible", timeout: TIMEOUT }).catch(async () => {
    throw new CheckFailed(`the flow did not go on after the token: ${(await page.locator("#app").textContent())?.trim()}`);
  });
  check(seen.verify.length === 1 && seen.verify[0].response === TOKEN && seen.verify[0].secret === "e2e-secret-key", `siteverify got ${JSON.stringify(seen.verify)}`);
  ok("the widget's token is posted; the server verifies it at siteverify with the stage's secret; the flow goes on");
}

async function main() {
  console.log(`captcha-browser: ${BASE}, provider ${PROVIDER}`);
  const { server, seen } = await provider();
  const profile = mkdtempSync(join(tmpdir(), "authflow-e2e-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: EXECUTABLE,
    headless: true,
    viewport: { width: 800, height: 700 },
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const problems = [];
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    page.on("pageerror", (e) => problems.push(String(e)));
    page.on("console", (m) => {
      // 404: the avatar and favicon the server does not serve. A policy violation or a
      // script error would be a problem.
      if (m.type() === "error" && !/404/.test(m.text())) problems.push(m.text());
    });
    try {
      await run(page, seen);
    } catch (e) {
      await page.screenshot({ path: join(ARTIFACTS, "captcha-failure.png"), fullPage: true }).catch(() => {});
      throw e;
    }
    check(problems.length === 0, `page errors: ${problems.join(" | ")}`);
    ok("no script errors or policy violations on the page");
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
    server.close();
  }
  console.log("captcha-browser: all checks passed");
}

try {
  await main();
} catch (e) {
  console.error(`captcha-browser: FAILED: ${e instanceof CheckFailed ? e.message : e?.stack || e}`);
  process.exit(1);
}
