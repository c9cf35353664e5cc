// Browser tests of the Deployed Defenders page against a real Console fed over the defender
// channel. Run with tests/browser/run.sh (or `node --test` in this folder, with DC_CONSOLE_BIN).
"use strict";

const { test, before, after, describe } = require("node:test");
const assert = require("node:assert/strict");
const { startConsole, fargateDefender, waitFor } = require("./lib/console");
const { seedMixedFleet, sampleObservations, Fleet } = require("./lib/fleet");
const { launch, newPage, screenshot } = require("./lib/browser");

let dc;
let browser;
let seeded;

before(async () => {
  dc = await startConsole({ heartbeatInterval: 1, grace: 2, sweepInterval: 1 });
  seeded = await seedMixedFleet(dc, { fargateConnected: 8, fargateDisconnected: 3 });
  seeded.fleet.start();
  await dc.observations(seeded.fargate[0].hostname, sampleObservations(8));
  browser = await launch();
  // The silent Defenders turn disconnected after the 2 s grace period.
  await waitFor(async () => (await dc.get("/api/v1/defenders?type=fargate&connected=false")).headers.get("Total-Count") === "3", {
    what: "3 disconnected Fargate Defenders",
  });
});

after(async () => {
  seeded?.fleet.stop();
  await browser?.close();
  await dc?.stop();
});

const hostsOnPage = (page) => page.$$eval("#rows tr", (rows) => rows.map((r) => r.dataset.host));
const query = (page) => new URL(page.url()).searchParams;

async function open(path = "/", size) {
  const page = await newPage(browser, size);
  await page.goto(dc.base + path);
  await page.waitForSelector("#rows tr, #empty:not([hidden])");
  return page;
}

describe("Deployed Defenders", () => {
  test("lists every Defender with its UI type label, summary tiles and total", async () => {
    const page = await open("/");
    const total = 3 + 8 + 1 + 4;
    await waitFor(async () => (await page.textContent("#range")).includes(`of ${total} Defenders`), { what: "range text" });
    assert.equal((await hostsOnPage(page)).length, total);
    const appEmbeddedRow = page.locator(`#rows tr[data-host="${seeded.appEmbedded.hostname}"]`);
    assert.match(await appEmbeddedRow.textContent(), /Container Defender - App-Embedded/);
    const tile = page.locator('.tile[data-cat="appEmbedded"]');
    assert.match(await tile.textContent(), /12.*9 connected.*3 disconnected/s);
    assert.deepEqual(page.errors, []);
    await page.context().close();
  });

  test("Type filter: Fargate, from the multi-select; URL reflects it and a shared URL restores it", async () => {
    const page = await open("/");
    await page.click("#type-btn");
    await page.getByLabel("Fargate", { exact: true }).check();
    await page.keyboard.press("Escape");
    await waitFor(async () => (await hostsOnPage(page)).length === 11, { what: "11 Fargate rows" });
    assert.equal(query(page).get("type"), "fargate");
    assert.match(await page.textContent("#chips"), /Type: Fargate/);
    const types = await page.$$eval("#rows tr td[data-col=\"type\"]", (tds) => [...new Set(tds.map((t) => t.textContent.trim()))]);
    assert.deepEqual(types, ["Fargate"]);

    // Add App-Embedded by clicking the option's text (not the box): both types, comma list.
    await page.click("#type-btn");
    await page.locator("#type-options label", { hasText: /^\s*Container Defender - App-Embedded$/ }).click({ position: { x: 120, y: 8 } });
    assert.ok(await page.isVisible("#type-menu"), "the menu stays open after a click on an option's text");
    await waitFor(async () => (await hostsOnPage(page)).length === 12, { what: "12 rows" });
    assert.equal(query(page).get("type"), "fargate,appEmbedded");

    // A fresh page on the shared URL shows the same view.
    const shared = await open(new URL(page.url()).pathname + new URL(page.url()).search);
    assert.equal((await hostsOnPage(shared)).length, 12);
    assert.equal(await shared.textContent("#type-summary"), "Fargate, Container Defender - App-Embedded");
    await shared.context().close();
    await page.context().close();
  });

  test("Status, Cluster and search filters narrow the table and land in the URL", async () => {
    const page = await open("/?type=fargate");
    await page.selectOption("#f-status", "false");
    await waitFor(async () => (await hostsOnPage(page)).length === 3, { what: "3 disconnected" });
    assert.equal(query(page).get("connected"), "false");
    await page.selectOption("#f-status", "");

    await page.fill("#f-cluster", "prod-west");
    // The Cluster field filters by substring (clusterContains).
    await waitFor(async () => query(page).get("clusterContains") === "prod-west", { what: "cluster in URL" });
    const expectedWest = seeded.fargate.filter((d) => d.cluster === "prod-west").length;
    await waitFor(async () => (await hostsOnPage(page)).length === expectedWest, { what: "prod-west rows" });

    await page.fill("#f-cluster", "");
    const target = seeded.fargate[5];
    await page.fill("#f-search", target.hostname.slice(4, 20));
    await waitFor(async () => JSON.stringify(await hostsOnPage(page)) === JSON.stringify([target.hostname]), { what: "search hit" });
    assert.equal(query(page).get("search"), target.hostname.slice(4, 20));

    // Search by App ID family.
    await page.fill("#f-search", "payments-api:");
    const payments = seeded.fargate.filter((d) => d.appID.startsWith("payments-api:")).length;
    await waitFor(async () => (await hostsOnPage(page)).length === payments, { what: "App ID search" });

    await page.click("#clear-filters");
    await waitFor(async () => (await hostsOnPage(page)).length === 16, { what: "all rows" });
    assert.equal(new URL(page.url()).search, "");
    await page.context().close();
  });

  test("no matches shows an empty state that says what to do", async () => {
    const page = await open("/?search=no-such-defender");
    await page.waitForSelector("#empty:not([hidden])");
    assert.match(await page.textContent("#empty"), /No Defenders match these filters/);
    await page.click("#empty [data-clear]");
    await waitFor(async () => (await hostsOnPage(page)).length === 16, { what: "cleared" });
    await page.context().close();
  });

  test("sorting by column header uses the server's sort and toggles direction", async () => {
    const page = await open("/?type=fargate");
    const sorted = seeded.fargate.map((d) => d.hostname).sort();
    assert.deepEqual(await hostsOnPage(page), sorted);
    assert.equal(await page.getAttribute('th[data-sort="hostname"]', "aria-sort"), "ascending");

    await page.click('th[data-sort="hostname"] button');
    await waitFor(async () => (await hostsOnPage(page))[0] === sorted[sorted.length - 1], { what: "reversed" });
    assert.equal(query(page).get("reverse"), "true");
    assert.equal(await page.getAttribute('th[data-sort="hostname"]', "aria-sort"), "descending");

    await page.click('th[data-sort="connected"] button');
    await waitFor(async () => query(page).get("sort") === "connected" && !query(page).has("reverse"), { what: "sort=connected" });
    await waitFor(async () => {
      const status = await page.$$eval("#rows tr td[data-label=\"Status\"] .badge", (b) => b.map((x) => x.textContent));
      return status.length === 11 && status.slice(0, 3).every((s) => s === "Disconnected") && status.slice(3).every((s) => s === "Connected");
    }, { what: "disconnected first" });
    await page.context().close();
  });

  test("paging shows the total and moves through pages", async () => {
    // 16 Defenders fit one page of 25; add enough to need two.
    const extra = new Fleet(dc);
    for (let i = 0; i < 20; i++) await extra.addFargate({ family: "batch-pager", cluster: "paging" });
    extra.start();
    const page = await open("/");
    try {
      await page.selectOption("#page-size", "25");
      await waitFor(async () => (await page.textContent("#range")) === "1–25 of 36 Defenders", { what: "page 1 range" });
      assert.equal(query(page).get("limit"), "25");
      assert.equal(await page.textContent("#page-of"), "Page 1 of 2");
      const first = await hostsOnPage(page);
      await page.click("#next");
      await waitFor(async () => (await page.textContent("#range")) === "26–36 of 36 Defenders", { what: "page 2 range" });
      assert.equal(query(page).get("offset"), "25");
      const second = await hostsOnPage(page);
      assert.equal(second.length, 11);
      assert.equal(new Set([...first, ...second]).size, 36, "pages do not overlap");
      assert.equal(await page.isDisabled("#next"), true);
      await page.click("#prev");
      await waitFor(async () => !query(page).has("offset"), { what: "back to page 1" });
      // Browser history: Back returns to page 2.
      await page.goBack();
      await waitFor(async () => (await page.textContent("#range")) === "26–36 of 36 Defenders", { what: "history back" });
    } finally {
      extra.stop();
      await new Promise((r) => setTimeout(r, 600));
      for (const h of [...extra.alive.keys()]) await dc.fetch(`${dc.base}/api/v1/defenders/${h}`, { method: "DELETE" });
      await page.context().close();
    }
  });

  test("a Defender that stops heartbeating turns disconnected on the page, with removal time", async () => {
    const d = await seeded.fleet.addFargate({ family: "checkout", cluster: "prod-east" });
    const page = await open(`/?type=fargate&search=${d.hostname}`);
    const row = page.locator(`#rows tr[data-host="${d.hostname}"]`);
    await waitFor(async () => /Connected/.test(await row.textContent()), { what: "connected" });
    const scrollBefore = await page.evaluate(() => window.scrollY);
    await seeded.fleet.silence(d.hostname);
    // Grace 2 s + refresh every 5 s: bounded wait, no blind sleep.
    await waitFor(async () => /Disconnected/.test(await row.textContent()), { timeoutMs: 25000, what: "disconnected on the page" });
    const text = await row.textContent();
    assert.match(text, /since \d\d:\d\d UTC/);
    assert.match(text, /removal in (59|60) min/);
    // The refresh kept the filters.
    assert.equal(query(page).get("search"), d.hostname);
    assert.equal(await page.evaluate(() => window.scrollY), scrollBefore);
    await dc.get(`/api/v1/defenders/${d.hostname}`);
    await dc.fetch(`${dc.base}/api/v1/defenders/${d.hostname}`, { method: "DELETE" });
    await page.context().close();
  });

  test("auto-refresh keeps filters, sort, page and scroll", async () => {
    const page = await open("/?type=fargate&sort=cluster&reverse=true", { width: 1280, height: 400 });
    await page.evaluate(() => window.scrollTo(0, 300));
    const before = await hostsOnPage(page);
    const updated = await page.textContent("#updated");
    await waitFor(async () => (await page.textContent("#updated")) !== updated, { timeoutMs: 20000, what: "a refresh" });
    assert.deepEqual(await hostsOnPage(page), before);
    assert.equal(await page.evaluate(() => window.scrollY), 300);
    assert.equal(query(page).get("sort"), "cluster");
    assert.equal(await page.getAttribute('th[data-sort="cluster"]', "aria-sort"), "descending");
    await page.context().close();
  });

  test("screenshots of the filtered Fargate view (wide and narrow)", async () => {
    for (const [width, height, name] of [
      [1280, 800, "defenders-fargate-1280x800.png"],
      [400, 860, "defenders-fargate-400px.png"],
    ]) {
      const page = await open("/?type=fargate", { width, height });
      await waitFor(async () => (await page.$$("#rows .badge.bad")).length >= 3, { what: "disconnected badges" });
      assert.ok((await page.$$("#rows .badge.ok")).length >= 8);
      const file = await screenshot(page, name);
      assert.ok(file.endsWith(name));
      // No horizontal scrolling of the page itself on a narrow window.
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
      assert.ok(overflow <= 1, `page overflows horizontally by ${overflow}px at ${width}px`);
      await page.context().close();
    }
  });
});

describe("Defender detail", () => {
  test("shows all fields, cloud metadata and App-Embedded observations; keyboard opens and closes it", async () => {
    const d = seeded.fargate[0];
    const page = await open(`/?type=fargate`);
    await page.locator(`#rows tr[data-host="${d.hostname}"] td.host button`).focus();
    await page.keyboard.press("Enter");
    await page.waitForSelector("#detail[open] .events");
    const body = await page.textContent("#detail-body");
    for (const want of [d.appID, d.cluster, d.version, d.cloudMetadata.resourceID, d.cloudMetadata.image, "AWS_ECS_FARGATE", "123456789012", "us-east-1", "Last seen", "Registered"])
      assert.ok(body.includes(want), `detail shows ${want}`);
    assert.equal(await page.textContent("#detail-title"), d.hostname);
    assert.equal(await page.$$eval("#detail .events tbody tr", (r) => r.length), 8);
    for (const kind of ["process", "network", "dns", "filesystem"]) assert.ok(body.includes(kind));
    assert.match(body, /api\.stripe\.com/);
    await screenshot(page, "defender-detail-1280x800.png");
    await page.keyboard.press("Escape");
    await waitFor(async () => !(await page.$("#detail[open]")), { what: "detail closed" });
    // Focus returns to the row.
    assert.equal(await page.evaluate(() => document.activeElement.closest("tr")?.dataset.host), d.hostname);
    await page.context().close();
  });

  test("delete asks for confirmation; cancel keeps the Defender, confirm removes it and it shows in Audit", async () => {
    const d = await seeded.fleet.addFargate({ family: "to-delete", cluster: "prod-east" }, { alive: false });
    await dc.observations(d.hostname, sampleObservations(3));
    const page = await open(`/?search=${d.hostname}`);
    await page.click(`#rows tr[data-host="${d.hostname}"]`);
    await page.waitForSelector("#detail[open] .events");
    await page.click("#detail-delete");
    await page.waitForSelector("#confirm[open]");
    assert.match(await page.textContent("#confirm"), /observations/);
    await page.click("#confirm button[value=cancel]");
    await waitFor(async () => !(await page.$("#confirm[open]")), { what: "confirm closed" });
    assert.equal((await dc.get(`/api/v1/defenders/${d.hostname}`)).status, 200);

    await page.click("#detail-delete");
    await page.click("#confirm-delete");
    await waitFor(async () => !(await page.$("#detail[open]")), { what: "detail closed after delete" });
    assert.equal((await dc.get(`/api/v1/defenders/${d.hostname}`)).status, 404);
    await page.waitForSelector("#empty:not([hidden])");
    assert.match(await page.textContent("#toast"), /Deleted .* and 3 observations/);

    await page.click('.nav a[data-view="audit"]');
    await waitFor(async () => (await page.textContent("#audit-rows")).includes(d.hostname), { what: "audit record" });
    assert.equal(query(page).get("view"), "audit");
    const row = page.locator("#audit-rows tr", { hasText: d.hostname });
    assert.match(await row.textContent(), /admin/, "the audit record names the signed-in user");
    await page.context().close();
  });
});

describe("Advanced settings", () => {
  test("validates client-side, saves, shows the fixed App-Embedded rule and server errors inline", async () => {
    const page = await open("/");
    await page.click("#open-settings");
    await page.waitForSelector("#settings[open]");
    const input = page.getByLabel("Automatically remove disconnected Defenders after (days)");
    await waitFor(async () => (await input.inputValue()) === "1", { what: "current value loaded" });
    assert.match(await page.textContent("#settings"), /App-Embedded Defenders .* always removed one hour after they disconnect/);

    let posts = 0;
    page.on("request", (r) => r.method() === "POST" && r.url().includes("/settings/defender") && posts++);
    for (const bad of ["0", "366", "2.5", ""]) {
      await input.fill(bad);
      await page.click("#s-save");
      await page.waitForSelector("#s-days-error:not([hidden])");
      assert.match(await page.textContent("#s-days-error"), /days/);
      assert.equal(await input.getAttribute("aria-invalid"), "true");
    }
    assert.equal(posts, 0, "invalid values are not sent");

    // A server-side rejection is shown inline: intercept one POST to answer as the Console does.
    await page.route("**/api/v1/settings/defender", (route) =>
      route.request().method() === "POST"
        ? route.fulfill({ status: 400, contentType: "application/json", body: JSON.stringify({ code: "invalid_field", field: "disconnectPeriodDays", message: "disconnectPeriodDays: must be between 1 and 365" }) })
        : route.continue(),
    );
    await input.fill("30");
    await page.click("#s-save");
    await waitFor(async () => /must be between 1 and 365/.test(await page.textContent("#s-days-error")), { what: "server error inline" });
    assert.ok(await page.$("#settings[open]"), "dialog stays open on error");
    await page.unroute("**/api/v1/settings/defender");

    await input.fill("14");
    await page.keyboard.press("Enter");
    await waitFor(async () => !(await page.$("#settings[open]")), { what: "dialog closed" });
    const saved = await dc.get("/api/v1/settings/defender");
    assert.equal(saved.body.disconnectPeriodDays, 14);
    assert.equal(saved.body.appEmbeddedRemovalHours, 1);

    // Non-App-Embedded disconnected Defenders now show a 14-day removal.
    await page.goto(`${dc.base}/?type=daemonset&connected=false`);
    await waitFor(async () => /removal in 13 d 23 h|removal in 14 d/.test(await page.textContent("#rows")), { timeoutMs: 20000, what: "14-day removal" });
    await page.context().close();
  });
});

describe("Resilience and accessibility", () => {
  test("every control is labelled and reachable by keyboard", async () => {
    const page = await open("/");
    const unlabelled = await page.$$eval("input, select", (els) =>
      els.filter((e) => e.type !== "checkbox" && !(e.labels && e.labels.length) && !e.getAttribute("aria-label")).map((e) => e.id),
    );
    assert.deepEqual(unlabelled, []);
    const reached = new Set();
    for (let i = 0; i < 60; i++) {
      await page.keyboard.press("Tab");
      reached.add(await page.evaluate(() => document.activeElement.id || document.activeElement.textContent.trim().slice(0, 20)));
    }
    for (const id of ["open-settings", "type-btn", "f-status", "f-cluster", "f-search", "download"]) assert.ok(reached.has(id), `Tab reaches #${id}`);
    assert.ok([...reached].some((x) => x === "Hostname"), "Tab reaches the sortable headers");

    // The Type multi-select works from the keyboard alone.
    await page.focus("#type-btn");
    await page.keyboard.press("Enter");
    await page.waitForSelector("#type-menu:not([hidden])");
    await page.keyboard.press("Space"); // the first option, Fargate, has focus
    await page.keyboard.press("Escape");
    await waitFor(async () => query(page).get("type") === "fargate", { what: "type=fargate from the keyboard" });
    assert.equal(await page.evaluate(() => document.activeElement.id), "type-btn");
    assert.equal(await page.getAttribute("#type-btn", "aria-expanded"), "false");
    await page.context().close();
  });

  test("an unreachable Console shows 'Console unreachable, retrying' and recovers", async () => {
    const page = await open("/");
    await page.route("**/api/v1/**", (route) => route.abort("connectionrefused"));
    await page.waitForSelector("#banner:not([hidden])", { timeout: 12000 });
    assert.match(await page.textContent("#banner"), /Console unreachable\. Retrying every 5 s/);
    assert.ok((await hostsOnPage(page)).length > 0, "last data stays visible");
    await page.unroute("**/api/v1/**");
    await page.waitForSelector("#banner", { state: "hidden", timeout: 12000 });
    await page.context().close();
  });

  test("an invalid parameter in a shared URL is explained, with a way out", async () => {
    const page = await newPage(browser);
    // sort is validated client-side; an unknown type name is dropped. Force a server 400 instead:
    await page.route("**/api/v1/defenders?*", (route) =>
      route.fulfill({ status: 400, contentType: "application/json", body: JSON.stringify({ code: "invalid_parameter", field: "cluster", message: "cluster: too long" }) }),
    );
    await page.goto(dc.base + "/?cluster=x");
    await page.waitForSelector("#banner:not([hidden])");
    assert.match(await page.textContent("#banner"), /rejected this view: cluster: too long/);
    await page.unroute("**/api/v1/defenders?*");
    await page.click("#banner [data-reset]");
    await page.waitForSelector("#banner", { state: "hidden" });
    assert.equal(new URL(page.url()).search, "");
    await page.context().close();
  });

  test("an empty inventory explains how to start Defenders", async () => {
    const empty = await startConsole();
    try {
      const page = await newPage(browser);
      await page.goto(empty.base + "/");
      await page.waitForSelector("#empty:not([hidden])");
      const text = await page.textContent("#empty");
      assert.match(text, /No Defenders yet/);
      assert.match(text, /defender-fleet-sim/);
      await screenshot(page, "empty-inventory-1280x800.png");
      await page.context().close();
    } finally {
      await empty.stop();
    }
  });

  test("Protect a task is reachable from the navigation", async () => {
    const page = await open("/");
    await page.click('.nav a[data-view="protect"]');
    await page.waitForSelector("#view-protect:not([hidden])");
    assert.equal(query(page).get("view"), "protect");
    assert.equal(await page.getAttribute('.nav a[data-view="protect"]', "aria-current"), "page");
    assert.equal(await page.textContent("#p-generate"), "Generate protected task");
    await page.context().close();
  });
});
