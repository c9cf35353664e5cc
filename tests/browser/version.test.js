// Browser test of the "Upgrade needed" marking: Defenders older than the Console's
// --defender-version get a badge, the category tiles count them, and the Version filter lists
// them (URL `outdated=true`). Run with tests/browser/run.sh.
"use strict";

const { test, before, after, describe } = require("node:test");
const assert = require("node:assert/strict");
const { startConsole, fargateDefender, waitFor } = require("./lib/console");
const { launch, newPage, screenshot } = require("./lib/browser");

let dc;
let browser;
const old = [];
const current = [];

before(async () => {
  // Not the default version: the page must follow the flag. A long grace keeps them connected.
  dc = await startConsole({ heartbeatInterval: 30, grace: 600, extraArgs: ["--defender-version", "33.00.100"] });
  for (const version of ["32.07.123", "33.0.99"]) old.push(fargateDefender({ family: "billing", version }));
  for (const version of ["33.00.100", "dev-build"]) current.push(fargateDefender({ family: "billing", version }));
  for (const d of [...old, ...current]) assert.equal((await dc.heartbeat(d)).registered, true); // throws on a non-2xx
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await dc?.stop();
});

const hostsOnPage = (page) => page.$$eval("#rows tr", (rows) => rows.map((r) => r.dataset.host).sort());

describe("Upgrade needed", () => {
  test("outdated Defenders carry a badge, the tile counts them, the Version filter lists them", async () => {
    const version = await dc.get("/api/v1/version");
    assert.equal(version.body, "33.00.100");

    const page = await newPage(browser);
    await page.goto(dc.base + "/");
    await waitFor(async () => (await page.textContent("#range")).includes("of 4 Defenders"), { what: "4 Defenders listed" });
    for (const d of old) {
      const badge = page.locator(`#rows tr[data-host="${d.hostname}"] .badge.upgrade`);
      assert.equal(await badge.textContent(), "Upgrade needed");
      assert.match(await badge.getAttribute("title"), /33\.00\.100/);
    }
    for (const d of current) assert.equal(await page.locator(`#rows tr[data-host="${d.hostname}"] .badge.upgrade`).count(), 0);
    assert.match(await page.locator('.tile[data-cat="appEmbedded"]').textContent(), /2 upgrade needed/);

    await page.selectOption("#f-version", "true");
    await waitFor(async () => (await page.textContent("#range")).includes("of 2 Defenders"), { what: "the filtered list" });
    assert.equal(new URL(page.url()).searchParams.get("outdated"), "true");
    assert.deepEqual(await hostsOnPage(page), old.map((d) => d.hostname).sort());
    assert.match(await page.textContent("#chips"), /Version: Upgrade needed/);

    // A shared URL restores the filter; the opposite choice lists the others.
    await page.goto(dc.base + "/?outdated=false");
    await waitFor(async () => (await page.textContent("#range")).includes("of 2 Defenders"), { what: "up-to-date list" });
    assert.equal(await page.inputValue("#f-version"), "false");
    assert.deepEqual(await hostsOnPage(page), current.map((d) => d.hostname).sort());
    assert.deepEqual(page.errors, []);
    await page.context().close(); // its idle keep-alive connections would hold Console workers
  });

  test("the version chart highlights Upgrade needed; a bar filters the table; tile numbers are filters", async () => {
    for (const [width, name] of [[1280, "version-chart-1280x800.png"], [400, "version-chart-400px.png"]]) {
      const page = await newPage(browser, { width, height: 800 });
      await page.goto(dc.base + "/");
      await page.waitForSelector("#versions-bar rect");
      assert.equal(await page.textContent("#versions-summary"), "4 versions, 2 Defenders need an upgrade");
      await page.click("#versions-summary");
      await page.waitForSelector("#versions-legend button");
      const legend = await page.$$eval("#versions-legend button", (bs) => bs.map((b) => [b.dataset.version, b.classList.contains("outdated"), b.textContent]));
      assert.deepEqual(legend.map(([v]) => v).sort(), ["32.07.123", "33.0.99", "33.00.100", "dev-build"].sort());
      for (const [v, outdated, text] of legend) {
        assert.equal(outdated, v === "32.07.123" || v === "33.0.99", `${v} upgrade needed`);
        assert.equal(/Upgrade needed/.test(text), outdated);
      }
      assert.match(await page.getAttribute("#versions-bar svg", "aria-label"), /4 versions; 2 of 4 Defenders need an upgrade/);
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
      assert.ok(overflow <= 1, `overflows by ${overflow}px at ${width}px`);
      await screenshot(page, name);

      // A legend entry (keyboard) and a bar segment (pointer) filter the table to that version.
      await page.click('#versions-legend button[data-version="32.07.123"]');
      await waitFor(async () => (await page.textContent("#range")).includes("of 1 Defender"), { what: "one Defender of 32.07.123" });
      assert.equal(new URL(page.url()).searchParams.get("version"), "32.07.123");
      assert.match(await page.textContent("#chips"), /Version: 32\.07\.123/);
      await waitFor(async () => (await page.getAttribute('#versions-legend button[data-version="32.07.123"]', "aria-pressed")) === "true", { what: "the pressed legend entry" });
      assert.deepEqual(await hostsOnPage(page), [old[0].hostname]);
      await page.locator('#versions-bar rect[data-version="33.00.100"]').dispatchEvent("click");
      await waitFor(async () => new URL(page.url()).searchParams.get("version") === "33.00.100", { what: "the bar's version" });
      await waitFor(async () => (await hostsOnPage(page)).join() === current[0].hostname, { what: "the 33.00.100 Defender" });
      await page.context().close();
    }

    // The tiles' numbers apply their filter.
    const page = await newPage(browser);
    await page.goto(dc.base + "/");
    await page.waitForSelector('.tile[data-cat="appEmbedded"] [data-filter="outdated"]');
    await page.click('.tile[data-cat="appEmbedded"] [data-filter="outdated"]');
    await waitFor(async () => (await page.textContent("#range")).includes("of 2 Defenders"), { what: "the upgrade-needed Defenders" });
    let q = new URL(page.url()).searchParams;
    assert.equal(q.get("outdated"), "true");
    assert.equal(q.get("type"), "fargate,appEmbedded,eksFargate");
    assert.deepEqual(await hostsOnPage(page), old.map((d) => d.hostname).sort());
    // The tiles are redrawn when the counts arrive, which the page asks for after the list.
    await waitFor(async () => (await page.getAttribute('.tile[data-cat="appEmbedded"] [data-filter="outdated"]', "aria-pressed")) === "true", { what: "the pressed tile number" });
    await page.click('.tile[data-cat="appEmbedded"] [data-filter="connected"]');
    await waitFor(async () => new URL(page.url()).searchParams.get("connected") === "true", { what: "connected filter" });
    q = new URL(page.url()).searchParams;
    assert.equal(q.get("outdated"), null);
    await waitFor(async () => (await page.textContent("#range")).includes("of 4 Defenders"), { what: "the connected Defenders" });
    assert.deepEqual(page.errors, []);
    await page.context().close();
  });
});
