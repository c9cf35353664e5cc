// Browser tests of the Fleet history view (docs/ui.md "Fleet history"): the Console samples its
// fleet (here every second, --history-interval 1) and the page charts connected, disconnected
// and evicted Defenders per category, at 1280×800 and 400 px.
"use strict";

const { test, before, after, describe } = require("node:test");
const assert = require("node:assert/strict");
const { startConsole, fargateDefender, waitFor } = require("./lib/console");
const { launch, newPage, screenshot } = require("./lib/browser");

let dc;
let browser;

before(async () => {
  dc = await startConsole({ heartbeatInterval: 30, grace: 90, extraArgs: ["--history-interval", "1"] });
  for (let i = 0; i < 4; i++) await dc.heartbeat(fargateDefender({ family: "hist" }));
  // A sample taken after the heartbeats (the first one is taken at start, before them).
  await waitFor(async () => {
    const h = (await dc.get("/api/v1/defenders/history?range=hour")).body;
    const last = h.samples[h.samples.length - 1];
    return last && last.counts.appEmbedded && last.counts.appEmbedded.connected === 4;
  }, { what: "a sample with 4 connected App-Embedded Defenders" });
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await dc?.stop();
});

describe("Fleet history", () => {
  test("charts the sampled counts; period and category are in the URL", async () => {
    const page = await newPage(browser);
    await page.goto(dc.base + "/?view=history");
    await page.waitForSelector("#history-chart svg");
    assert.equal(await page.locator("#history-chart polyline").count(), 3, "one line per state");
    assert.match(await page.textContent("#history-summary"), /App-Embedded, last hour: \d+ points?; latest .*: 4 connected, 0 disconnected, 0 evicted/);
    assert.match(await page.getAttribute("#history-chart svg", "aria-label"), /4 connected/);
    await screenshot(page, "history-1280.png");

    await page.click('#history-filters input[value="day"]');
    await waitFor(async () => /last day/.test(await page.textContent("#history-summary")), { what: "day range" });
    assert.equal(new URL(page.url()).searchParams.get("range"), "day");
    await page.selectOption("#h-category", "host");
    await waitFor(async () => /^Host, last day: .*0 connected/.test(await page.textContent("#history-summary")), { what: "host category" });
    await page.reload();
    await page.waitForSelector("#history-summary");
    assert.match(await page.textContent("#history-summary"), /^Host, last day/);
    assert.deepEqual(page.errors, []);
    await page.close();
  });

  test("fits a 400 px screen", async () => {
    const page = await newPage(browser, { width: 400, height: 800 });
    await page.goto(dc.base + "/?view=history");
    await page.waitForSelector("#history-chart svg");
    const w = await page.$eval("#history-chart svg", (s) => s.getBoundingClientRect().width);
    assert.ok(w <= 400 && w > 200, `chart ${w} px wide`);
    await screenshot(page, "history-400.png");
    assert.deepEqual(page.errors, []);
    await page.close();
  });
});
