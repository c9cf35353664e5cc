// The OpenAPI document (web/ui/openapi.json) against a running Console: it is well formed, it
// covers every route the Console serves, and every path it lists exists.
"use strict";

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");
const { startConsole, fargateDefender, REPO } = require("./lib/console");
const { sampleObservations } = require("./lib/fleet");
const { launch, newPage, screenshot } = require("./lib/browser");

const DOC_FILE = path.join(REPO, "web", "ui", "openapi.json");
const METHODS = ["get", "post", "put", "patch", "delete"];

// The routes the Console serves (web/routes.cpp). Keep in step with it: a route added there
// without a place in the document fails the coverage test.
const CONSOLE_ROUTES = [
  "GET /api/v1/defenders/eviction-status",
  "POST /api/v1/defenders/eviction-status/resume",
  "GET /api/v1/defenders",
  "GET /api/v1/defenders/names",
  "GET /api/v1/defenders/summary",
  "GET /api/v1/defenders/clusters",
  "GET /api/v1/defenders/types",
  "GET /api/v1/defenders/versions",
  "GET /api/v1/defenders/history",
  "GET /api/v1/defenders/download",
  "GET /api/v1/defenders/{hostname}",
  "DELETE /api/v1/defenders/{hostname}",
  "POST /api/v1/defenders/delete",
  "GET /api/v1/views",
  "POST /api/v1/views",
  "DELETE /api/v1/views/{name}",
  "GET /api/v1/settings/defender",
  "POST /api/v1/settings/defender",
  "GET /api/v1/profiles/app-embedded",
  "GET /api/v1/profiles/app-embedded/{hostname}",
  "GET /api/v1/audit/defenders",
  "GET /api/v1/audit/events",
  "GET /api/v1/audit/events/download",
  "POST /api/v1/defenders/fargate.json",
  "POST /api/v1/defenders/fargate.yaml",
  "GET /api/v1/defenders/app-ids",
  "GET /api/v1/images/entrypoints",
  "POST /api/v1/images/entrypoints",
  "DELETE /api/v1/images/entrypoints",
  "GET /api/v1/registry",
  "GET /api/v1/registry/credentials",
  "POST /api/v1/registry/credentials",
  "DELETE /api/v1/registry/credentials/{id}",
  "GET /api/v1/version",
  "GET /api/v1/_ping",
  "GET /api/v1/defenders/image-name",
  "GET /api/v1/defenders/install-bundle",
  "GET /api/v1/openapi.json",
  "GET /healthz",
  "GET /readyz",
  "GET /metrics",
  "POST /api/v1/authenticate",
  "GET /api/v1/users/current",
  "GET /api/v1/users",
  "POST /api/v1/users",
  "PUT /api/v1/users/{username}",
  "DELETE /api/v1/users/{username}",
  "GET /api/v1/credentials",
  "POST /api/v1/credentials",
  "DELETE /api/v1/credentials/{id}",
];
const CHANNEL_ROUTES = ["POST /api/v1/defender/heartbeat", "POST /api/v1/defender/disconnect", "POST /api/v1/defender/observations"];

const doc = JSON.parse(fs.readFileSync(DOC_FILE, "utf8"));
let dc;
let defender;

before(async () => {
  dc = await startConsole({ heartbeatInterval: 30, grace: 90 });
  defender = fargateDefender({ family: "openapi-check" });
  await dc.heartbeat(defender);
  await dc.observations(defender.hostname, sampleObservations(2));
});
after(async () => dc?.stop());

function operations() {
  const out = [];
  for (const [p, item] of Object.entries(doc.paths))
    for (const m of METHODS) if (item[m]) out.push({ path: p, method: m.toUpperCase(), op: item[m], item });
  return out;
}
const isChannel = (item) => Array.isArray(item.servers) && item.servers.some((s) => /defender channel/i.test(s.description || ""));

test("openapi.json is an OpenAPI 3 document whose references all resolve", () => {
  assert.match(doc.openapi, /^3\.\d+\.\d+$/);
  assert.ok(doc.info && doc.info.title && doc.info.version);
  const ids = new Set();
  const refs = [];
  (function walk(v) {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === "object") {
      if (typeof v.$ref === "string") refs.push(v.$ref);
      Object.values(v).forEach(walk);
    }
  })(doc);
  for (const r of refs) {
    assert.match(r, /^#\//, `local reference ${r}`);
    const target = r.slice(2).split("/").reduce((a, k) => (a ? a[k] : undefined), doc);
    assert.ok(target, `reference ${r} resolves`);
  }
  for (const { path: p, method, op, item } of operations()) {
    assert.ok(op.operationId, `${method} ${p} has an operationId`);
    assert.ok(!ids.has(op.operationId), `operationId ${op.operationId} is unique`);
    ids.add(op.operationId);
    assert.ok(op.summary, `${method} ${p} has a summary`);
    assert.ok(op.responses && Object.keys(op.responses).some((c) => c.startsWith("2")), `${method} ${p} documents a 2xx`);
    // Every {param} in the path is declared as a path parameter.
    const declared = [...(item.parameters || []), ...(op.parameters || [])]
      .map((x) => (x.$ref ? x.$ref.slice(2).split("/").reduce((a, k) => a[k], doc) : x))
      .filter((x) => x.in === "path")
      .map((x) => x.name);
    for (const [, name] of p.matchAll(/\{([^}]+)\}/g)) assert.ok(declared.includes(name), `${method} ${p} declares path parameter ${name}`);
  }
});

test("the document covers every route of both listeners, and no other", () => {
  const documented = operations().map((o) => `${o.method} ${o.path}`);
  for (const r of [...CONSOLE_ROUTES, ...CHANNEL_ROUTES]) assert.ok(documented.includes(r), `documented: ${r}`);
  for (const r of documented) assert.ok(CONSOLE_ROUTES.includes(r) || CHANNEL_ROUTES.includes(r), `known route: ${r}`);
  for (const o of operations()) assert.equal(isChannel(o.item), CHANNEL_ROUTES.includes(`${o.method} ${o.path}`), `${o.method} ${o.path} is on the right listener`);
});

// A route exists when the Console does not answer with its router's 404 ("no route for ...").
function routeMissing(res) {
  return res.status === 404 && res.body && res.body.code === "not_found";
}

test("every documented path exists on a running Console", async () => {
  const fill = (p) => p.replace("{hostname}", encodeURIComponent(defender.hostname));
  for (const { path: p, method, item } of operations()) {
    const base = isChannel(item) ? dc.channel : dc.base;
    const url = base + fill(p);
    const label = `${method} ${p}`;
    if (method === "GET") {
      // Valid parameters: a real Defender for {hostname}; filters that the document lists.
      const query = {
        "/api/v1/defenders": "?type=fargate&limit=10&sort=lastSeen&reverse=true&outdated=true",
        "/api/v1/defenders/install-bundle": "?consoleaddr=127.0.0.1&defenderType=fargate", // consoleaddr is required
      };
      const res = await dc.fetch(url + (query[p] || ""));
      const text = await res.text();
      assert.ok(res.status >= 200 && res.status < 300, `${label} -> ${res.status} ${text.slice(0, 200)}`);
    } else {
      // An invalid request: the route must answer with a 4xx of its own, never the router's 404.
      const res = await dc.fetch(method === "DELETE" ? base + p.replace("{hostname}", "no-such-defender") : url, {
        method,
        headers: { "Content-Type": "application/json" },
        body: method === "DELETE" ? undefined : "{}",
      });
      const text = await res.text();
      let body = null;
      try {
        body = JSON.parse(text);
      } catch {}
      if (method === "DELETE" && p === "/api/v1/defenders/{hostname}") {
        // Deleting a Defender is idempotent: an unknown one is a no-op (204), not an error.
        assert.equal(res.status, 204, `${label} -> ${res.status} ${text.slice(0, 200)}`);
        continue;
      }
      assert.ok(res.status >= 400 && res.status < 500, `${label} -> ${res.status} (want a 4xx for an invalid request)`);
      assert.ok(!routeMissing({ status: res.status, body }), `${label} is routed (got the router's 404: ${text})`);
      if (method === "POST") assert.notEqual(res.status, 404, `${label}: a 4xx other than 404`);
    }
  }
  // Sanity of the check itself: an unknown route is the router's 404.
  const unknown = await dc.fetch(`${dc.base}/api/v1/no-such-route`);
  assert.ok(routeMissing({ status: unknown.status, body: await unknown.json() }));
});

test("documented response fields match what the Console returns for a Defender", async () => {
  const res = await dc.get(`/api/v1/defenders/${defender.hostname}`);
  assert.equal(res.status, 200);
  const schema = doc.components.schemas.Defender;
  assert.deepEqual(Object.keys(res.body).sort(), Object.keys(schema.properties).sort());
  // The document the Console serves at /api/v1/openapi.json is this one.
  assert.deepEqual((await dc.get("/api/v1/openapi.json")).body, doc);
  const settings = await dc.get("/api/v1/settings/defender");
  assert.deepEqual(Object.keys(settings.body).sort(), Object.keys(doc.components.schemas.DefenderSettings.properties).sort());
  const profile = await dc.get(`/api/v1/profiles/app-embedded/${defender.hostname}`);
  const profileKeys = [
    ...Object.keys(doc.components.schemas.AppEmbeddedProfileSummary.properties),
    ...Object.keys(doc.components.schemas.AppEmbeddedProfile.allOf[1].properties),
  ].sort();
  assert.deepEqual(Object.keys(profile.body).sort(), profileKeys);
  assert.deepEqual(Object.keys(profile.body.observations[0]).sort(), Object.keys(doc.components.schemas.Observation.properties).sort());
});

test("the API reference page renders every operation without errors", async () => {
  const browser = await launch();
  try {
    for (const [width, name] of [[1280, "api-reference-1280x800.png"], [400, "api-reference-400px.png"]]) {
      const page = await newPage(browser, { width, height: 800 });
      await page.goto(`${dc.base}/api.html`);
      await page.waitForSelector(".op");
      assert.equal(await page.$$eval(".op", (e) => e.length), operations().length);
      assert.equal(await page.$$eval(".model", (e) => e.length), Object.keys(doc.components.schemas).length);
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
      assert.ok(overflow <= 1, `API page overflows by ${overflow}px at ${width}px`);
      assert.deepEqual(page.errors, []);
      await screenshot(page, name);
      await page.close();
    }
  } finally {
    await browser.close();
  }
});
