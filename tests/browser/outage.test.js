// Browser test of the outage guard banner: when most of the fleet goes silent at once the page
// says evictions are paused, and an operator can resume them. Run with tests/browser/run.sh.
"use strict";

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { startConsole, fargateDefender, waitFor } = require("./lib/console");
const { launch, newPage } = require("./lib/browser");

let dc;
let browser;

before(async () => {
  dc = await startConsole({ heartbeatInterval: 1, grace: 2, sweepInterval: 1, extraArgs: ["--outage-min-fleet", "4"] });
  // Six Defenders register, then all go silent: an outage, not six tasks stopped on purpose.
  for (let i = 0; i < 6; i++) await dc.heartbeat(fargateDefender());
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await dc?.stop();
});

test("a silent fleet shows the paused-evictions banner; Resume evictions ends it", async () => {
  await waitFor(async () => (await dc.get("/api/v1/defenders/eviction-status")).body.paused === true, {
    what: "outage guard paused evictions",
  });
  const page = await newPage(browser);
  page.on("dialog", (d) => d.accept());
  await page.goto(dc.base + "/");
  await page.waitForSelector("#outage:not([hidden])");
  const text = await page.textContent("#outage");
  assert.match(text, /Evictions paused\./);
  assert.match(text, /6 of the 6 Defenders connected at/);
  // The disconnected rows say their removal is held back, not a countdown.
  await waitFor(async () => (await page.$$eval("#rows tr", (rows) => rows.filter((r) => /removal paused/.test(r.textContent)).length)) === 6, {
    what: "six rows with removal paused",
  });
  // How long evictions have been held, and how many due ones (none yet: Fargate waits 1 hour).
  assert.match(text, /Paused for \d+ (s|min); 0 Defenders due for eviction held back\./);
  assert.match(text, /stopped on purpose \(a scale-down\)/);
  assert.ok(/dc_evictions_paused_seconds \d+/.test((await dc.get("/metrics")).text));
  await page.click("#resume-evictions");
  await page.waitForSelector("#outage[hidden]", { state: "attached" });
  const status = (await dc.get("/api/v1/defenders/eviction-status")).body;
  assert.equal(status.paused, false);
  assert.equal(status.incident.endedBy, "resumed by admin");
  assert.ok(/dc_outage_incidents_total 1/.test((await dc.get("/metrics")).text));
  // Resumed: the countdown is back.
  await waitFor(async () => /removal in \d+ min/.test(await page.textContent("#rows")), { what: "removal countdown after resuming" });
  await page.close();
});
