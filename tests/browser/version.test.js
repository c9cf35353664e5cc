// Browser test of the "Upgrade needed" marking: Defenders older than the Console's
// --defender-version get a badge, the category tiles count them, and the Version filter lists
// them (URL `outdated=true`). Run with tests/browser/run.sh.
"use strict";

const { test, before, after, describe } = require("node:test");
const assert = require("node:assert/strict");
const { startConsole, fargateDefender, waitFor } = require("./lib/console");
const { launch, newPage } = require("./lib/browser");

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
    await page.close();
  });
});
