// Accessibility of every view: axe-core (the npm package, tests/browser/package-lock.json) run in
// the page at 1280×800 and 400 px reports no violations — Deployed Defenders (with a selection,
// the saved views menu and the version legend open), a Defender's details, the bulk delete
// confirmation, Advanced settings, Fleet history, Audit, Protect a task (with its entrypoints
// and registry credentials), the API reference and the sign-in dialog. Also the keyboard: arrow
// keys move between rows, Enter opens the details. Run with tests/browser/run.sh.
"use strict";

const { test, before, after, describe } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const { startConsole, fargateDefender, waitFor } = require("./lib/console");
const { launch, newPage, screenshot } = require("./lib/browser");

const AXE = fs.readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");

let dc;
let browser;

before(async () => {
  dc = await startConsole({ heartbeatInterval: 1, grace: 600, sweepInterval: 1 });
  for (let i = 0; i < 8; i++) await dc.heartbeat(fargateDefender({ family: ["shop", "search"][i % 2], cluster: "a11y", version: i % 2 ? "32.07.123" : "34.01.132" }));
  await dc.fetch(`${dc.base}/api/v1/images/entrypoints`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ image: "registry.example.com/shop:1", entrypoint: ["/run"] }),
  });
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await dc?.stop();
});

// axe-core's violations in the page, as "rule: target…" lines. Injected through the DevTools
// protocol (page.evaluate), which the page's Content-Security-Policy does not govern.
async function violations(page) {
  await page.evaluate(AXE);
  const found = await page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ["violations"] });
    return r.violations.map((v) => `${v.id} (${v.impact}): ${v.nodes.slice(0, 4).map((n) => n.target.join(" ")).join(", ")}`);
  });
  return found;
}
async function checkClean(page, what) {
  const found = await violations(page);
  assert.deepEqual(found, [], `${what}: axe-core violations`);
}

for (const [width, height, tag] of [[1280, 800, "1280x800"], [400, 800, "400px"]]) {
  describe(`axe-core at ${tag}`, () => {
    test("Deployed Defenders: list, selection, saved views, versions, details, bulk confirm, settings", async () => {
      const page = await newPage(browser, { width, height });
      await page.goto(`${dc.base}/`);
      await page.waitForSelector("#rows tr");
      await page.waitForSelector("#versions-bar rect");
      await checkClean(page, "list");
      await page.locator("#rows .rowsel").first().click();
      await page.waitForSelector("#bulkbar:not([hidden])");
      await checkClean(page, "selection");
      await page.click("#versions-summary");
      await page.waitForSelector("#versions-legend button");
      await checkClean(page, "version legend");
      await page.click("#versions-summary");
      await page.click("#views-menu summary");
      await page.waitForSelector("#views-empty:not([hidden]), #views-list li");
      await checkClean(page, "saved views menu");
      await page.click("#views-menu summary");
      await page.click("#bulk-delete");
      await page.waitForSelector("#bulk-confirm[open]");
      await checkClean(page, "bulk delete confirmation");
      await page.keyboard.press("Escape");
      await page.locator("#rows td.host button").first().click();
      await page.waitForSelector("#detail[open]");
      await waitFor(async () => (await page.textContent("#detail-title")) !== "", { what: "detail loaded" });
      await checkClean(page, "details");
      await page.keyboard.press("Escape");
      await page.click("#open-settings");
      await page.waitForSelector("#settings[open]");
      await checkClean(page, "advanced settings");
      assert.deepEqual(page.errors, []);
      await page.context().close();
    });

    test("Fleet history, Audit, Protect a task, API reference", async () => {
      const page = await newPage(browser, { width, height });
      for (const view of ["history", "audit", "protect"]) {
        await page.goto(`${dc.base}/?view=${view}`);
        await page.waitForSelector(`#view-${view}:not([hidden])`);
        await page.waitForLoadState("networkidle").catch(() => {});
        await page.waitForTimeout(300);
        await checkClean(page, view);
      }
      await page.goto(`${dc.base}/api.html`);
      await page.waitForSelector(".op");
      await checkClean(page, "API reference");
      assert.deepEqual(page.errors, []);
      await page.context().close();
    });

    test("sign-in", async () => {
      const page = await newPage(browser, { width, height, auth: null });
      await page.goto(`${dc.base}/`);
      await page.waitForSelector("#signin[open]");
      await checkClean(page, "sign-in");
      await page.context().close();
    });
  });
}

describe("Keyboard", () => {
  test("arrow keys move between rows, Home/End to the ends, Enter opens the details", async () => {
    const page = await newPage(browser);
    await page.goto(`${dc.base}/?cluster=a11y`);
    await waitFor(async () => (await page.$$eval("#rows tr", (r) => r.length)) === 8, { what: "8 rows" });
    const hosts = await page.$$eval("#rows tr", (r) => r.map((x) => x.dataset.host));
    const focusedHost = () => page.evaluate(() => document.activeElement?.closest("tr")?.dataset.host);
    await page.locator("#rows td.host button").first().focus();
    await page.keyboard.press("ArrowDown");
    await page.keyboard.press("ArrowDown");
    assert.equal(await focusedHost(), hosts[2]);
    await page.keyboard.press("ArrowUp");
    assert.equal(await focusedHost(), hosts[1]);
    await page.keyboard.press("End");
    assert.equal(await focusedHost(), hosts[7]);
    await page.keyboard.press("Home");
    assert.equal(await focusedHost(), hosts[0]);
    // From a checkbox, the arrows go to the next row's checkbox; Space ticks it.
    await page.locator("#rows .rowsel").first().focus();
    await page.keyboard.press("ArrowDown");
    assert.equal(await page.evaluate(() => document.activeElement.className), "rowsel");
    await page.keyboard.press("Space");
    assert.equal(await page.textContent("#bulk-count"), "1 Defender selected.");
    assert.equal(await page.$$eval("#rows tr.picked", (r) => r.map((x) => x.dataset.host).join()), hosts[1]);
    // Enter on a hostname opens its details; closing them gives focus back to that row.
    await page.locator("#rows td.host button").nth(3).focus();
    await page.keyboard.press("Enter");
    await page.waitForSelector("#detail[open]");
    await page.keyboard.press("Escape");
    await page.waitForSelector("#detail", { state: "hidden" });
    assert.equal(await focusedHost(), hosts[3]);
    await screenshot(page, "keyboard-rows-1280x800.png");
    assert.deepEqual(page.errors, []);
    await page.context().close();
  });
});
