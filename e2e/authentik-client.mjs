// Drives a running authflow server with authentik's own TypeScript API client
// (@goauthentik/api): logs in as akadmin through default-authentication-flow, enrolls
// a new user through default-enrollment-flow, logs in as that user, then deletes that
// account through default-unenrollment-flow (a GET asks "Delete your account?" as an
// ak-stage-consent challenge; only the POST of its token deletes).
//
// Starts nothing itself. Environment:
//   AUTHFLOW_URL                  server base URL, e.g. http://127.0.0.1:19080
//   AUTHFLOW_BOOTSTRAP_PASSWORD   akadmin's password
//
// Exits 0 when every step answered the expected challenge, 1 otherwise.

import {
  Configuration,
  ContextualFlowInfoLayoutEnum,
  FlowDesignationEnum,
  FlowsApi,
  PromptTypeEnum,
  ResponseError,
  instanceOfConsentChallenge,
  instanceOfContextualFlowInfo,
  instanceOfErrorDetail,
  instanceOfIdentificationChallenge,
  instanceOfPasswordChallenge,
  instanceOfPromptChallenge,
  instanceOfRedirectChallenge,
  instanceOfStagePrompt,
} from "@goauthentik/api";

const BASE = (process.env.AUTHFLOW_URL || "").replace(/\/+$/, "");
const ADMIN_PASSWORD = process.env.AUTHFLOW_BOOTSTRAP_PASSWORD || "";
if (!BASE || !ADMIN_PASSWORD) {
  console.error("authentik-client: set AUTHFLOW_URL and AUTHFLOW_BOOTSTRAP_PASSWORD");
  process.exit(2);
}

class CheckFailed extends Error {}

/** A cookie jar as an @goauthentik/api middleware. */
class CookieJar {
  constructor(name) {
    this.name = name;
    this.cookies = new Map();
  }

  get(name) {
    return this.cookies.get(name);
  }

  middleware() {
    return {
      pre: async (context) => {
        const headers = { ...(context.init.headers || {}) };
        if (this.cookies.size > 0) {
          headers.Cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join("; ");
        }
        const csrf = this.cookies.get("authentik_csrf");
        if (csrf) headers["X-authentik-CSRF"] = csrf;
        return { url: context.url, init: { ...context.init, headers } };
      },
      post: async (context) => {
        for (const line of context.response.headers.getSetCookie()) {
          const [pair, ...attrs] = line.split(";");
          const eq = pair.indexOf("=");
          if (eq <= 0) continue;
          const name = pair.slice(0, eq).trim();
          const value = pair.slice(eq + 1).trim();
          const expired = attrs.some((a) => /^\s*max-age\s*=\s*0\s*$/i.test(a));
          if (expired || value === "") this.cookies.delete(name);
          else this.cookies.set(name, value);
        }
        return context.response;
      },
    };
  }
}

function api(jar) {
  return new FlowsApi(
    new Configuration({ basePath: `${BASE}/api/v3`, middleware: [jar.middleware()] }),
  );
}

const known = (enumObject, value) =>
  Object.values(enumObject).includes(value) && value !== enumObject.UnknownDefaultOpenApi;

/** Problems of a deserialised challenge against the client's own model checks. */
function conformance(challenge) {
  const problems = [];
  const required = {
    "ak-stage-consent": instanceOfConsentChallenge,
    "ak-stage-identification": instanceOfIdentificationChallenge,
    "ak-stage-password": instanceOfPasswordChallenge,
    "ak-stage-prompt": instanceOfPromptChallenge,
    "xak-flow-redirect": instanceOfRedirectChallenge,
  }[challenge.component];
  if (required && !required(challenge)) problems.push(`missing required fields of ${challenge.component}`);
  if (challenge.flowInfo !== undefined) {
    if (!instanceOfContextualFlowInfo(challenge.flowInfo)) problems.push("flow_info lacks cancel_url/layout");
    else if (!known(ContextualFlowInfoLayoutEnum, challenge.flowInfo.layout)) {
      problems.push(`unknown flow_info.layout ${JSON.stringify(challenge.flowInfo.layout)}`);
    }
  } else if (challenge.component.startsWith("ak-stage-")) {
    problems.push("stage challenge without flow_info");
  }
  if (challenge.component === "ak-stage-identification" && !known(FlowDesignationEnum, challenge.flowDesignation)) {
    problems.push(`unknown flow_designation ${JSON.stringify(challenge.flowDesignation)}`);
  }
  if (challenge.component === "ak-stage-prompt") {
    for (const f of challenge.fields || []) {
      if (!instanceOfStagePrompt(f)) problems.push(`prompt field ${f.fieldKey} lacks required keys`);
      else if (!known(PromptTypeEnum, f.type)) problems.push(`prompt field ${f.fieldKey} has unknown type ${f.type}`);
    }
  }
  for (const [field, errors] of Object.entries(challenge.responseErrors || {})) {
    if (!Array.isArray(errors) || !errors.every((e) => instanceOfErrorDetail(e))) {
      problems.push(`response_errors.${field} is not a list of {string, code}`);
    }
  }
  return problems;
}

function expectComponent(step, challenge, component) {
  if (challenge?.component !== component) {
    const seen = JSON.stringify(challenge);
    throw new CheckFailed(
      `${step}: expected component ${component}, got ${challenge?.component} (${seen.slice(0, 400)})`,
    );
  }
  const problems = conformance(challenge);
  if (problems.length > 0) {
    throw new CheckFailed(`${step}: ${component} does not match @goauthentik/api's model: ${problems.join("; ")}`);
  }
  console.log(`  ok   ${step}: ${component}`);
  return challenge;
}

function expect(step, condition, detail) {
  if (!condition) throw new CheckFailed(`${step}: ${detail}`);
  console.log(`  ok   ${step}`);
}

/** Logs in through default-authentication-flow; returns the final redirect challenge. */
async function login(flows, jar, username, password, { wrongPasswordFirst = false } = {}) {
  const slug = "default-authentication-flow";
  const query = "next=%2Fafter-login";
  const ident = expectComponent(
    `${username}: GET ${slug}`,
    await flows.flowsExecutorGet({ flowSlug: slug, query }),
    "ak-stage-identification",
  );
  expect(
    `${username}: identification asks for username/email`,
    Array.isArray(ident.userFields) && ident.userFields.length > 0,
    `userFields = ${JSON.stringify(ident.userFields)}`,
  );
  expect(
    `${username}: flow_info deserialised`,
    typeof ident.flowInfo?.cancelUrl === "string" && ident.flowInfo.cancelUrl.length > 0,
    `flowInfo = ${JSON.stringify(ident.flowInfo)}`,
  );
  const pw = expectComponent(
    `${username}: POST identification`,
    await flows.flowsExecutorSolve({
      flowSlug: slug,
      query,
      flowChallengeResponseRequest: { component: "ak-stage-identification", uidField: username },
    }),
    "ak-stage-password",
  );
  expect(
    `${username}: password stage shows the pending user`,
    typeof pw.pendingUser === "string" && pw.pendingUser.length > 0,
    `pendingUser = ${JSON.stringify(pw.pendingUser)}`,
  );
  if (wrongPasswordFirst) {
    const again = expectComponent(
      `${username}: POST wrong password`,
      await flows.flowsExecutorSolve({
        flowSlug: slug,
        query,
        flowChallengeResponseRequest: { component: "ak-stage-password", password: `${password}-wrong` },
      }),
      "ak-stage-password",
    );
    const errors = again.responseErrors?.password;
    expect(
      `${username}: wrong password answers a field error`,
      Array.isArray(errors) && errors.length > 0 && typeof errors[0].string === "string",
      `responseErrors = ${JSON.stringify(again.responseErrors)}`,
    );
  }
  const done = expectComponent(
    `${username}: POST password`,
    await flows.flowsExecutorSolve({
      flowSlug: slug,
      query,
      flowChallengeResponseRequest: { component: "ak-stage-password", password },
    }),
    "xak-flow-redirect",
  );
  expect(
    `${username}: redirected to next`,
    done.to === "/after-login",
    `to = ${JSON.stringify(done.to)}`,
  );
  expect(
    `${username}: logged-in session has the CSRF cookie`,
    typeof jar.get("authentik_csrf") === "string",
    `cookies = ${JSON.stringify([...jar.cookies.keys()])}`,
  );
  return done;
}

async function enroll(flows, jar, username, password) {
  const slug = "default-enrollment-flow";
  const query = "";
  const first = expectComponent(
    `enroll: GET ${slug}`,
    await flows.flowsExecutorGet({ flowSlug: slug, query }),
    "ak-stage-prompt",
  );
  const firstKeys = first.fields.map((f) => f.fieldKey);
  expect(
    "enroll: first prompt asks username/password/password_repeat",
    ["username", "password", "password_repeat"].every((k) => firstKeys.includes(k)),
    `fields = ${JSON.stringify(firstKeys)}`,
  );
  const second = expectComponent(
    "enroll: POST first prompt",
    await flows.flowsExecutorSolve({
      flowSlug: slug,
      query,
      flowChallengeResponseRequest: {
        component: "ak-stage-prompt",
        username,
        password,
        password_repeat: password,
      },
    }),
    "ak-stage-prompt",
  );
  const secondKeys = second.fields.map((f) => f.fieldKey);
  expect(
    "enroll: second prompt asks name/email",
    ["name", "email"].every((k) => secondKeys.includes(k)),
    `fields = ${JSON.stringify(secondKeys)}`,
  );
  const done = expectComponent(
    "enroll: POST second prompt",
    await flows.flowsExecutorSolve({
      flowSlug: slug,
      query,
      flowChallengeResponseRequest: {
        component: "ak-stage-prompt",
        name: "E2E Test User",
        email: `${username}@example.com`,
      },
    }),
    "xak-flow-redirect",
  );
  expect("enroll: redirect has a target", typeof done.to === "string" && done.to.length > 0, `to = ${JSON.stringify(done.to)}`);
  expect(
    "enroll: the new user is logged in (CSRF cookie set)",
    typeof jar.get("authentik_csrf") === "string",
    `cookies = ${JSON.stringify([...jar.cookies.keys()])}`,
  );
}

async function unenroll(flows, jar, username, password) {
  const slug = "default-unenrollment-flow";
  const query = "";
  const ask = expectComponent(
    `unenroll: GET ${slug}`,
    await flows.flowsExecutorGet({ flowSlug: slug, query }),
    "ak-stage-consent",
  );
  expect(
    "unenroll: the GET asks before deleting",
    ask.headerText === "Delete your account?" && typeof ask.token === "string" && ask.token.length > 0,
    `headerText = ${JSON.stringify(ask.headerText)}`,
  );
  expect(
    "unenroll: the GET kept the login",
    typeof jar.get("authentik_csrf") === "string",
    `cookies = ${JSON.stringify([...jar.cookies.keys()])}`,
  );
  const wrong = expectComponent(
    "unenroll: POST a wrong token",
    await flows.flowsExecutorSolve({
      flowSlug: slug,
      query,
      flowChallengeResponseRequest: { component: "ak-stage-consent", token: "not-the-token" },
    }),
    "ak-stage-consent",
  );
  expect(
    "unenroll: a wrong token answers an error",
    Object.keys(wrong.responseErrors || {}).length > 0,
    `responseErrors = ${JSON.stringify(wrong.responseErrors)}`,
  );
  const done = expectComponent(
    "unenroll: POST the token",
    await flows.flowsExecutorSolve({
      flowSlug: slug,
      query,
      flowChallengeResponseRequest: { component: "ak-stage-consent", token: ask.token },
    }),
    "xak-flow-redirect",
  );
  expect("unenroll: redirected", done.to === "/", `to = ${JSON.stringify(done.to)}`);
  expect(
    "unenroll: logged out (CSRF cookie cleared)",
    jar.get("authentik_csrf") === undefined,
    `cookies = ${JSON.stringify([...jar.cookies.keys()])}`,
  );
  // The account is gone: its password no longer logs in.
  const again = new CookieJar("deleted");
  const flowsAgain = api(again);
  await flowsAgain.flowsExecutorGet({ flowSlug: "default-authentication-flow", query: "" });
  await flowsAgain.flowsExecutorSolve({
    flowSlug: "default-authentication-flow",
    query: "",
    flowChallengeResponseRequest: { component: "ak-stage-identification", uidField: username },
  });
  const refused = await flowsAgain.flowsExecutorSolve({
    flowSlug: "default-authentication-flow",
    query: "",
    flowChallengeResponseRequest: { component: "ak-stage-password", password },
  });
  expect(
    "unenroll: the deleted account cannot log in",
    refused.component !== "xak-flow-redirect" && again.get("authentik_csrf") === undefined,
    `answer = ${JSON.stringify(refused).slice(0, 300)}`,
  );
}

async function describeError(e) {
  if (e instanceof ResponseError) {
    let body = "";
    try {
      body = await e.response.text();
    } catch {
      // ignore
    }
    return `HTTP ${e.response.status} from ${e.response.url}: ${body.slice(0, 400)}`;
  }
  if (e?.name === "FetchError") {
    return `cannot reach ${BASE}: ${e.cause?.cause?.message || e.cause?.message || e.message}`;
  }
  return e?.stack || String(e);
}

async function main() {
  console.log(`authentik-client: ${BASE} with @goauthentik/api`);

  console.log("(a) akadmin logs in through default-authentication-flow");
  const adminJar = new CookieJar("admin");
  await login(api(adminJar), adminJar, "akadmin", ADMIN_PASSWORD, { wrongPasswordFirst: true });

  console.log("(b) a new user enrolls through default-enrollment-flow, then logs in");
  const suffix = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
  const username = `e2e-${suffix}`;
  const password = `E2e-pass-${suffix}!`;
  const enrollJar = new CookieJar("enroll");
  await enroll(api(enrollJar), enrollJar, username, password);
  const loginJar = new CookieJar("new-user");
  await login(api(loginJar), loginJar, username, password);

  console.log("(c) that user deletes the account through default-unenrollment-flow");
  await unenroll(api(loginJar), loginJar, username, password);

  console.log("authentik-client: all checks passed");
}

try {
  await main();
} catch (e) {
  console.error(`authentik-client: FAILED: ${e instanceof CheckFailed ? e.message : await describeError(e)}`);
  process.exit(1);
}
