// Browser tests of the Audit view: the general audit trail (docs/ui.md "Audit") with its kind,
// user and time filters, the CSV export, and the card layout on a 400 px wide screen.
"use strict";

const { test, before, after, describe } = require("node:test");
const assert = require("node:assert/strict");
const { startConsole, fargateDefender, waitFor } = require("./lib/console");
const { launch, newPage, screenshot } = require("./lib/browser");

let dc;
let browser;
let victim;
let periodBefore;

async function api(method, p, body, authorization) {
  const headers = { "Content-Type": "application/json" };
  if (authorization) headers.Authorization = authorization;
  const res = await dc.fetch(dc.base + p, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: res.status, text: await res.text() };
}

before(async () => {
  dc = await startConsole();
  browser = await launch();
  // One event of several kinds: a settings change, a user created, a failed sign-in, a refused
  // action and a manual delete.
  periodBefore = (await dc.get("/api/v1/settings/defender")).body.disconnectPeriodDays;
  assert.equal((await api("POST", "/api/v1/settings/defender", { disconnectPeriodDays: 12 })).status, 200);
  assert.equal((await api("POST", "/api/v1/users", { username: "ava-auditor", password: "ava-password-1", role: "auditor" })).status, 201);
  assert.equal((await api("POST", "/api/v1/authenticate", { username: "mallory", password: "guess" })).status, 401);
  const ava = "Basic " + Buffer.from("ava-auditor:ava-password-1").toString("base64");
  assert.equal((await api("POST", "/api/v1/settings/defender", { disconnectPeriodDays: 2 }, ava)).status, 403);
  victim = fargateDefender({ family: "audited" });
  await dc.heartbeat(victim);
  assert.equal((await api("DELETE", `/api/v1/defenders/${victim.hostname}`)).status, 200);
});

after(async () => {
  await browser?.close();
  await dc?.stop();
});

const kindsShown = (page) => page.$$eval("#audit-rows .ev-kind", (els) => els.map((e) => e.textContent));

describe("Audit trail", () => {
  test("shows every kind of event with who, when, where and what; filters by kind, user and time; exports CSV", async () => {
    const page = await newPage(browser);
    await page.goto(dc.base + "/?view=audit");
    await waitFor(async () => (await page.locator("#audit-rows tr").count()) >= 5, { what: "audit events" });
    const kinds = await kindsShown(page);
    for (const k of ["Settings changed", "User created", "Failed sign-in", "Refused action", "Defender deleted"])
      assert.ok(kinds.includes(k), `${k} in ${kinds}`);
    const refused = page.locator("#audit-rows tr", { hasText: "Refused action" });
    assert.match(await refused.textContent(), /ava-auditor.*127\.0\.0\.1.*POST.*\/api\/v1\/settings\/defender/s);
    const deleted = page.locator("#audit-rows tr", { hasText: "Defender deleted" });
    assert.match(await deleted.textContent(), new RegExp(`admin.*${victim.hostname}`, "s"));
    const changed = page.locator("#audit-rows tr", { hasText: "Settings changed" });
    assert.match(await changed.textContent(), new RegExp(`disconnectPeriodDays\\s*${periodBefore} → 12`));
    // No table wider than the window at 1280 px.
    assert.ok((await page.$eval("#audit-grid", (t) => t.getBoundingClientRect().width)) <= 1280);
    await screenshot(page, "audit-1280.png");

    // Kind filter, reflected in the URL and restored from it.
    await page.selectOption("#a-kind", "signin.failed");
    await waitFor(async () => JSON.stringify(await kindsShown(page)) === JSON.stringify(["Failed sign-in"]), { what: "only the failed sign-in" });
    assert.match(await page.textContent("#audit-rows"), /mallory/);
    assert.equal(new URL(page.url()).searchParams.get("auditKind"), "signin.failed");
    await page.reload();
    await waitFor(async () => JSON.stringify(await kindsShown(page)) === JSON.stringify(["Failed sign-in"]), { what: "filter restored" });
    assert.equal(await page.inputValue("#a-kind"), "signin.failed");

    // User filter (exact).
    await page.selectOption("#a-kind", "");
    await page.fill("#a-user", "ava-auditor");
    await waitFor(async () => JSON.stringify(await kindsShown(page)) === JSON.stringify(["Refused action"]), { what: "ava's events" });

    // A time window that ends before everything: nothing, with a message; Clear brings all back.
    await page.fill("#a-until", "2001-01-01T00:00");
    await page.dispatchEvent("#a-until", "change");
    await page.waitForSelector("#audit-empty:not([hidden])");
    assert.match(await page.textContent("#audit-empty"), /No events match/);
    assert.equal(new URL(page.url()).searchParams.get("auditUntil"), "2001-01-01T00:00");
    await page.click("#audit-clear");
    await waitFor(async () => (await page.locator("#audit-rows tr").count()) >= 5, { what: "all events again" });
    assert.equal(await page.inputValue("#a-user"), "");

    // Export: the filtered events as CSV.
    await page.selectOption("#a-kind", "user.created");
    await waitFor(async () => JSON.stringify(await kindsShown(page)) === JSON.stringify(["User created"]), { what: "user.created only" });
    const [download] = await Promise.all([page.waitForEvent("download"), page.click("#audit-download")]);
    assert.equal(download.suggestedFilename(), "audit.csv");
    const csv = require("node:fs").readFileSync(await download.path(), "utf8");
    const lines = csv.trim().split("\r\n");
    assert.equal(lines[0], "id,time,kind,user,address,detail");
    assert.equal(lines.length, 2, csv);
    assert.match(lines[1], /user\.created,admin,127\.0\.0\.1,.*ava-auditor/);
    assert.deepEqual(page.errors, []);
    await page.close();
  });

  test("at 400 px the audit trail is a list of cards, not a wide table", async () => {
    const page = await newPage(browser, { width: 400, height: 800 });
    await page.goto(dc.base + "/?view=audit");
    await waitFor(async () => (await page.locator("#audit-rows tr").count()) >= 5, { what: "audit events" });
    const width = await page.$eval("#audit-grid", (t) => t.getBoundingClientRect().width);
    assert.ok(width <= 400, `audit grid is ${width} px wide`);
    assert.equal(await page.$eval("#audit-rows tr", (tr) => getComputedStyle(tr).display), "block");
    // Each field carries its label.
    const card = page.locator("#audit-rows tr", { hasText: "Refused action" });
    assert.equal(await card.locator("td").first().getAttribute("data-label"), "Time (UTC)");
    const box = await card.boundingBox();
    assert.ok(box.x >= 0 && box.x + box.width <= 400, `card at ${box.x}+${box.width}`);
    await screenshot(page, "audit-400.png");
    assert.deepEqual(page.errors, []);
    await page.close();
  });
});
