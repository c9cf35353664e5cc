// Bulk actions on the Deployed Defenders page: row selection (one by one, shift-click ranges,
// the page), "select all N matching this filter", a bulk delete that states the count and asks
// again when the count changed, the CSV export of the selection, an auditor's view, and the
// narrow layout. Run with tests/browser/run.sh.
"use strict";

const { test, before, after, describe } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const { startConsole, fargateDefender, waitFor } = require("./lib/console");
const { launch, newPage, screenshot } = require("./lib/browser");

let dc;
let browser;

before(async () => {
  dc = await startConsole({ heartbeatInterval: 1, grace: 600, sweepInterval: 1 });
  for (let i = 0; i < 40; i++) await dc.heartbeat(fargateDefender({ family: "bulk", cluster: "bulk-a" }));
  for (let i = 0; i < 12; i++) await dc.heartbeat(fargateDefender({ family: "keep", cluster: "bulk-b" }));
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await dc?.stop();
});

async function open(path, size) {
  const page = await newPage(browser, size);
  await page.goto(dc.base + path);
  await page.waitForSelector("#rows tr, #empty:not([hidden])");
  return page;
}
async function total(query) {
  const res = await dc.get(`/api/v1/defenders?limit=1&${query}`);
  assert.equal(res.status, 200);
  return Number(res.headers.get("Total-Count"));
}
async function deletedEvents() {
  const res = await dc.get("/api/v1/audit/events?kind=defender.deleted&limit=1");
  return Number(res.headers.get("Total-Count"));
}
const activeId = (page) => page.evaluate(() => document.activeElement?.id || document.activeElement?.closest("tr")?.dataset.host || document.activeElement?.tagName);

describe("Bulk actions", () => {
  test("select all matching a filter, a count that changed is asked again, one audit record each", async () => {
    const page = await open("/?cluster=bulk-a&limit=25");
    await waitFor(async () => (await page.$$eval("#rows tr", (r) => r.length)) === 25, { what: "25 rows" });
    assert.ok(await page.isHidden("#bulkbar"), "no bar before anything is selected");
    await page.check("#select-page");
    await page.waitForSelector("#bulkbar:not([hidden])");
    assert.equal(await page.textContent("#bulk-count"), "25 Defenders selected.");
    assert.equal(await page.textContent("#select-all-matching"), "Select all 40 matching this filter");
    await page.click("#select-all-matching");
    assert.equal(await page.textContent("#bulk-count"), "All 40 Defenders matching this filter are selected.");
    assert.equal(await page.textContent("#bulk-delete"), "Delete 40 selected…");
    await screenshot(page, "bulk-selected-1280x800.png");

    await page.click("#bulk-delete");
    await page.waitForSelector("#bulk-confirm[open]");
    assert.equal(await page.textContent("#bulk-title"), "Delete 40 Defenders?");
    assert.equal(await page.textContent("#bulk-confirm-delete"), "Delete 40 Defenders");
    await screenshot(page, "bulk-confirm-1280x800.png");
    // Meanwhile one more task of that cluster registers: the Console refuses the old count.
    await dc.heartbeat(fargateDefender({ family: "bulk", cluster: "bulk-a" }));
    await page.click("#bulk-confirm-delete");
    await page.waitForSelector("#bulk-error:not([hidden])");
    assert.match(await page.textContent("#bulk-error"), /now matches 41 Defenders, not 40\. Nothing was deleted/);
    assert.equal(await page.textContent("#bulk-confirm-delete"), "Delete 41 Defenders");
    assert.equal(await total("cluster=bulk-a"), 41);
    assert.equal(await deletedEvents(), 0);

    await page.click("#bulk-confirm-delete");
    await page.waitForSelector("#bulk-confirm", { state: "hidden" });
    await waitFor(async () => (await page.textContent("#toast").catch(() => "")) === "Deleted 41 Defenders.", { what: "the toast" });
    assert.equal(await total("cluster=bulk-a"), 0);
    assert.equal(await total("cluster=bulk-b"), 12);
    assert.equal(await deletedEvents(), 41);
    // Nothing left under this filter: focus goes to the heading, never <body>.
    await waitFor(async () => (await activeId(page)) === "h-defenders", { what: "focus on the heading" });
    assert.ok(await page.isHidden("#bulkbar"));
    // The one error in the console is the browser's note on the expected 409.
    assert.deepEqual(page.errors.filter((e) => !/status of 409/.test(e)), []);
    await page.context().close(); // its idle keep-alive connections would hold Console workers
  });

  test("rows picked one by one and by shift-click export as CSV; a filter change clears them", async () => {
    const page = await open("/?cluster=bulk-b");
    await waitFor(async () => (await page.$$eval("#rows tr", (r) => r.length)) === 12, { what: "12 rows" });
    const boxes = page.locator("#rows .rowsel");
    await boxes.nth(1).click();
    await boxes.nth(4).click({ modifiers: ["Shift"] });
    assert.equal(await page.textContent("#bulk-count"), "4 Defenders selected.");
    assert.equal(await page.$$eval("#rows tr.picked", (r) => r.length), 4);
    const hosts = await page.$$eval("#rows tr.picked", (r) => r.map((x) => x.dataset.host));
    // Selection survives the refresh (every 5 s).
    await page.waitForTimeout(5500);
    assert.equal(await page.$$eval("#rows tr.picked", (r) => r.length), 4);
    const [download] = await Promise.all([page.waitForEvent("download"), page.click("#bulk-export")]);
    assert.equal(download.suggestedFilename(), "defenders-selection.csv");
    const text = fs.readFileSync(await download.path(), "utf8").replace(/^\ufeff/, "");
    const lines = text.trim().split("\r\n");
    assert.equal(lines[0], "hostname,type,category,version,connected,lastModified,lastSeen,disconnectedAt,removalAt,cluster,appID,container,provider,accountID,region,resourceID,image");
    assert.deepEqual(lines.slice(1).map((l) => l.split(",")[0]).sort(), [...hosts].sort());
    assert.ok(lines.slice(1).every((l) => l.includes(",bulk-b,")), "the cluster column");
    // Another filter starts from no selection.
    await page.fill("#f-search", "keep");
    await waitFor(async () => await page.isHidden("#bulkbar"), { what: "the selection cleared" });
    assert.deepEqual(page.errors, []);
    await page.context().close(); // its idle keep-alive connections would hold Console workers
  });

  test("an auditor can select and export but is not offered the delete; the Console refuses it", async () => {
    await dc.fetch(`${dc.base}/api/v1/users`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username: "bulk-auditor", password: "bulk-auditor-pw-1", role: "auditor" }),
    });
    const page = await newPage(browser, { auth: null });
    await page.goto(dc.base + "/?cluster=bulk-b");
    await page.waitForSelector("#signin[open]");
    await page.fill("#signin-user", "bulk-auditor");
    await page.fill("#signin-password", "bulk-auditor-pw-1");
    await page.click("#signin-submit");
    await page.waitForSelector("#rows tr");
    await page.check("#select-page");
    await page.waitForSelector("#bulkbar:not([hidden])");
    assert.ok(await page.isHidden("#bulk-delete"), "no bulk delete for an auditor");
    assert.ok(await page.isVisible("#bulk-export"));
    await screenshot(page, "bulk-auditor-1280x800.png");
    const token = await page.evaluate(() => sessionStorage.getItem("dcToken"));
    const res = await fetch(`${dc.base}/api/v1/defenders/delete`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
      body: JSON.stringify({ filter: { cluster: "bulk-b" }, expectedCount: 12 }),
    });
    assert.equal(res.status, 403);
    assert.equal(await total("cluster=bulk-b"), 12);
    assert.deepEqual(page.errors, []);
    await page.context().close(); // its idle keep-alive connections would hold Console workers
  });

  test("at 400 px the selection bar and the row boxes fit; picked hostnames are deleted", async () => {
    const page = await open("/?cluster=bulk-b", { width: 400, height: 800 });
    await waitFor(async () => (await page.$$eval("#rows tr", (r) => r.length)) === 12, { what: "12 rows" });
    await page.locator("#rows .rowsel").nth(0).click();
    await page.locator("#rows .rowsel").nth(1).click();
    await page.waitForSelector("#bulkbar:not([hidden])");
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 1, `page overflows by ${overflow}px at 400px`);
    await screenshot(page, "bulk-selected-400px.png");
    await page.click("#bulk-delete");
    await page.waitForSelector("#bulk-confirm[open]");
    assert.equal(await page.textContent("#bulk-title"), "Delete 2 Defenders?");
    await page.click("#bulk-confirm-delete");
    await page.waitForSelector("#bulk-confirm", { state: "hidden" });
    await waitFor(async () => (await page.$$eval("#rows tr", (r) => r.length)) === 10, { what: "10 rows left" });
    assert.equal(await total("cluster=bulk-b"), 10);
    // Focus on the first row that is left.
    await waitFor(async () => (await page.evaluate(() => !!document.activeElement?.closest("#rows td.host"))), { what: "focus on a row" });
    assert.deepEqual(page.errors, []);
    await page.context().close(); // its idle keep-alive connections would hold Console workers
  });
});
