// Saved views on the Deployed Defenders page: save the current filters under a name, apply a
// view, delete it; views belong to their user (another user sees none); focus after each
// action; the narrow layout. Run with tests/browser/run.sh.
"use strict";

const { test, before, after, describe } = require("node:test");
const assert = require("node:assert/strict");
const { startConsole, fargateDefender, waitFor } = require("./lib/console");
const { launch, newPage, screenshot } = require("./lib/browser");

let dc;
let browser;

before(async () => {
  dc = await startConsole({ heartbeatInterval: 1, grace: 600, sweepInterval: 1 });
  for (let i = 0; i < 5; i++) await dc.heartbeat(fargateDefender({ family: "east", cluster: "views-east" }));
  for (let i = 0; i < 7; i++) await dc.heartbeat(fargateDefender({ family: "west", cluster: "views-west" }));
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await dc?.stop();
});

const rowCount = (page) => page.$$eval("#rows tr", (r) => r.length);
const focused = (page) => page.evaluate(() => ({ id: document.activeElement?.id, name: document.activeElement?.dataset?.name, cls: document.activeElement?.className }));

describe("Saved views", () => {
  test("save the filters under a name, apply the view, delete it; focus follows", async () => {
    const page = await newPage(browser);
    await page.goto(`${dc.base}/?cluster=views-east&connected=true`);
    await waitFor(async () => (await rowCount(page)) === 5, { what: "5 rows" });
    await page.click("#views-menu summary");
    await page.waitForSelector("#views-empty:not([hidden])");
    await page.fill("#view-name", "East, connected");
    await page.click("#view-save");
    await waitFor(async () => (await page.textContent("#view-msg")) === "Saved view “East, connected”.", { what: "saved" });
    assert.deepEqual(await focused(page), { id: "", name: "East, connected", cls: "linkbtn apply-view" });
    await screenshot(page, "saved-views-1280x800.png");
    const stored = (await dc.get("/api/v1/views")).body;
    assert.deepEqual(stored.map((v) => [v.name, v.filter]), [["East, connected", { connected: "true", cluster: "views-east" }]]);

    // Elsewhere, the view brings the filters back.
    await page.goto(`${dc.base}/?cluster=views-west`);
    await waitFor(async () => (await rowCount(page)) === 7, { what: "7 rows" });
    await page.click("#views-menu summary");
    await page.waitForSelector("#views-list .apply-view");
    await page.click("#views-list .apply-view");
    await waitFor(async () => (await rowCount(page)) === 5, { what: "the view's 5 rows" });
    const q = new URL(page.url()).searchParams;
    assert.equal(q.get("cluster"), "views-east");
    assert.equal(q.get("connected"), "true");
    assert.ok(await page.isHidden("#views-panel"), "the menu closes");
    await waitFor(async () => (await page.evaluate(() => !!document.activeElement?.closest("#rows td.host"))), { what: "focus on the first row" });

    await page.click("#views-menu summary");
    await page.waitForSelector("#views-list .delete-view");
    await page.click("#views-list .delete-view");
    await waitFor(async () => (await page.textContent("#view-msg")) === "Deleted view “East, connected”.", { what: "deleted" });
    assert.equal((await focused(page)).id, "view-name");
    assert.ok(await page.isVisible("#views-empty"));
    assert.deepEqual((await dc.get("/api/v1/views")).body, []);
    assert.deepEqual(page.errors, []);
    await page.context().close(); // its idle keep-alive connections would hold Console workers
  });

  test("views are per user: an auditor sees none of the admin's and keeps their own", async () => {
    await dc.fetch(`${dc.base}/api/v1/views`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ name: "Admin's view", filter: { cluster: "views-west" } }),
    });
    await dc.fetch(`${dc.base}/api/v1/users`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username: "views-auditor", password: "views-auditor-pw-1", role: "auditor" }),
    });
    const page = await newPage(browser, { auth: null });
    await page.goto(dc.base + "/");
    await page.waitForSelector("#signin[open]");
    await page.fill("#signin-user", "views-auditor");
    await page.fill("#signin-password", "views-auditor-pw-1");
    await page.click("#signin-submit");
    await page.waitForSelector("#rows tr");
    await page.click("#views-menu summary");
    await page.waitForSelector("#views-empty:not([hidden])");
    assert.equal(await page.$$eval("#views-list li", (l) => l.length), 0);
    await page.fill("#view-name", "Mine");
    await page.press("#view-name", "Enter");
    await page.waitForSelector("#views-list .apply-view");
    assert.deepEqual(await page.$$eval("#views-list .apply-view", (b) => b.map((x) => x.textContent)), ["Mine"]);
    assert.deepEqual((await dc.get("/api/v1/views")).body.map((v) => v.name), ["Admin's view"]);
    assert.deepEqual(page.errors, []);
    await page.context().close(); // its idle keep-alive connections would hold Console workers
  });

  test("at 400 px the views menu fits the screen", async () => {
    const page = await newPage(browser, { width: 400, height: 800 });
    await page.goto(`${dc.base}/?cluster=views-east`);
    await page.waitForSelector("#rows tr");
    await page.click("#views-menu summary");
    await page.waitForSelector("#views-list .apply-view");
    const box = await page.locator("#views-panel").boundingBox();
    assert.ok(box.x >= 0 && box.x + box.width <= 401, `panel at ${box.x}..${box.x + box.width}`);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 1, `page overflows by ${overflow}px`);
    await screenshot(page, "saved-views-400px.png");
    assert.deepEqual(page.errors, []);
    await page.context().close(); // its idle keep-alive connections would hold Console workers
  });
});
