// Starts a real Defender Console on free ports and talks to both of its listeners.
"use strict";

const { spawn } = require("node:child_process");
const path = require("node:path");
const fs = require("node:fs");
const crypto = require("node:crypto");

const REPO = path.resolve(__dirname, "..", "..", "..");

function consoleBinary() {
  const p = process.env.DC_CONSOLE_BIN || path.join(REPO, "build", "asan", "main", "defender-console");
  return path.resolve(REPO, p);
}

// The Console runs on plain HTTP with a known admin password (see docs/security.md): every
// request of these tests, and of the page (lib/browser.js), signs in with HTTP Basic.
const ADMIN_USER = "admin";
const ADMIN_PASSWORD = "browser-tests-admin-password";
const BASIC_AUTH = "Basic " + Buffer.from(`${ADMIN_USER}:${ADMIN_PASSWORD}`).toString("base64");

// The admin session of the Console started last in this process (each test file runs in its own
// process and starts its own Console).
const session = { current: null };

// Starts the Console with a throw-away inventory and short liveness timings, and resolves once
// both listeners have printed their addresses.
async function startConsole({ heartbeatInterval = 1, grace = 2, sweepInterval = 1, extraArgs = [] } = {}) {
  const bin = consoleBinary();
  if (!fs.existsSync(bin)) throw new Error(`Console binary not found: ${bin} (build it first, or pass its path)`);
  const args = [
    "--database", ":memory:",
    "--host", "127.0.0.1",
    "--console-port", "0",
    "--defender-port", "0",
    "--ui-dir", path.join(REPO, "web", "ui"),
    "--heartbeat-interval", String(heartbeatInterval),
    "--grace", String(grace),
    "--sweep-interval", String(sweepInterval),
    "--log-level", "info",
    "--plain-http",
    "--password-iterations", "1000",
    ...extraArgs,
  ];
  const env = { ...process.env, DC_ADMIN_PASSWORD: ADMIN_PASSWORD };
  const child = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"], env });
  let log = "";
  const ports = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`Console did not start within 20 s:\n${log}`)), 20000);
    const onData = (chunk) => {
      log += chunk.toString();
      const ui = /web page and Console API:\s*https?:\/\/[^:\s]+:(\d+)\//.exec(log);
      const ch = /defender channel:\s*https?:\/\/[^:\s]+:(\d+)\//.exec(log);
      if (ui && ch) {
        clearTimeout(timer);
        resolve({ console: Number(ui[1]), defender: Number(ch[1]) });
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`Console exited with ${code} before it was ready:\n${log}`));
    });
  });
  child.stdout.on("data", (c) => (log += c.toString()));
  child.stderr.on("data", (c) => (log += c.toString()));
  const base = `http://127.0.0.1:${ports.console}`;
  const channel = `http://127.0.0.1:${ports.defender}`;

  // The Console-wide enrolment credential, for the Defenders these tests report.
  const issued = await fetch(`${base}/api/v1/credentials`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: BASIC_AUTH },
    body: JSON.stringify({ scope: "enrolment", description: "browser tests" }),
  });
  if (issued.status !== 201) throw new Error(`cannot issue a Defender credential: ${issued.status} ${await issued.text()}`);
  const credential = (await issued.json()).credential;

  // The admin's bearer token, as the page keeps it after signing in (lib/browser.js gives it to
  // pages that sign in as the admin, so they start signed in like a tab that already was).
  const signedIn = await fetch(`${base}/api/v1/authenticate`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username: ADMIN_USER, password: ADMIN_PASSWORD }),
  });
  if (!signedIn.ok) throw new Error(`cannot sign in as ${ADMIN_USER}: ${signedIn.status} ${await signedIn.text()}`);
  session.current = { token: (await signedIn.json()).token, user: ADMIN_USER };

  // fetch() with the right credentials for the listener `url` points at (admin on the Console
  // API, the enrolment credential on the defender channel), unless the caller set its own.
  function authFetch(url, init = {}) {
    const headers = new Headers(init.headers || {});
    if (!headers.has("Authorization")) {
      if (String(url).startsWith(channel)) headers.set("Authorization", `Bearer ${credential}`);
      else if (String(url).startsWith(base)) headers.set("Authorization", BASIC_AUTH);
    }
    return fetch(url, { ...init, headers });
  }

  async function post(url, body) {
    const res = await authFetch(url, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    const text = await res.text();
    if (!res.ok) throw new Error(`POST ${url} -> ${res.status}: ${text}`);
    return text ? JSON.parse(text) : null;
  }

  return {
    base,
    channel,
    ports,
    pid: child.pid, // for tests that freeze the Console (SIGSTOP/SIGCONT)
    credential,
    fetch: authFetch,
    log: () => log,
    async get(p) {
      const res = await authFetch(base + p);
      const text = await res.text();
      return { status: res.status, headers: res.headers, body: text ? safeJson(text) : null, text };
    },
    heartbeat(defender) {
      return post(`${channel}/api/v1/defender/heartbeat`, defender);
    },
    disconnect(hostname) {
      return post(`${channel}/api/v1/defender/disconnect`, { hostname });
    },
    observations(hostname, observations) {
      return post(`${channel}/api/v1/defender/observations`, { hostname, observations });
    },
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      const t = setTimeout(() => child.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(t);
    },
  };
}

function safeJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

// A Fargate Defender as the sidecar of one ECS task reports it.
function fargateDefender({ family = "checkout", cluster = "prod-east", account = "123456789012", region = "us-east-1", type = "fargate", version = "32.07.123" } = {}) {
  const taskId = crypto.randomBytes(16).toString("hex");
  return {
    hostname: taskId,
    type,
    appID: `${family}:${appUuid(family)}`,
    cluster,
    version,
    container: family,
    cloudMetadata: {
      provider: "aws",
      accountID: account,
      region,
      resourceID: `arn:aws:ecs:${region}:${account}:task/${cluster}/${taskId}`,
      awsExecutionEnv: "AWS_ECS_FARGATE",
      image: `${account}.dkr.ecr.${region}.amazonaws.com/${family}:1.4.2`,
      name: family,
    },
  };
}

// One App ID per task family, as the embed flow issues it.
const uuids = new Map();
function appUuid(family) {
  if (!uuids.has(family)) uuids.set(family, crypto.randomUUID());
  return uuids.get(family);
}

// Polls fn until it returns a truthy value, up to timeoutMs.
async function waitFor(fn, { timeoutMs = 20000, intervalMs = 100, what = "condition" } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${last})`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

module.exports = { startConsole, fargateDefender, waitFor, REPO, ADMIN_USER, ADMIN_PASSWORD, BASIC_AUTH, session };
