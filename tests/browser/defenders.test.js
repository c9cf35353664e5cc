// Browser tests of what an operator reaches for on the Deployed Defenders page: controls that
// follow the role, finding Defenders (App ID, search, cluster, type counts), the page's own
// liveness, the table (sticky header, no wrapped IDs, last seen, paging, selection, density),
// focus and the narrow layout. Run with tests/browser/run.sh.
"use strict";

const { test, before, after, describe } = require("node:test");
const assert = require("node:assert/strict");
const { startConsole, fargateDefender, waitFor } = require("./lib/console");
const { Fleet } = require("./lib/fleet");
const { launch, newPage, screenshot } = require("./lib/browser");

let dc;
let browser;
let fleet;
const fargate = [];

before(async () => {
  dc = await startConsole({ heartbeatInterval: 1, grace: 30, sweepInterval: 1 });
  fleet = new Fleet(dc);
  // 60 Fargate tasks over three families and three clusters, and one App-Embedded Defender
  // with the long type label.
  for (let i = 0; i < 60; i++) {
    const family = ["billing", "search", "checkout"][i % 3];
    const cluster = ["prod-east", "prod-west", "staging-eu"][i % 3];
    fargate.push(await fleet.add(fargateDefender({ family, cluster, version: i % 2 ? "32.07.123" : "33.01.002" })));
  }
  await fleet.add({ ...fargateDefender({ family: "ledger", cluster: "batch-x" }), type: "appEmbedded" });
  fleet.start();
  browser = await launch();
});

after(async () => {
  fleet?.stop();
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

async function apiAsAdmin(method, p, body) {
  const res = await dc.fetch(dc.base + p, { method, headers: { "Content-Type": "application/json" }, body: body === undefined ? undefined : JSON.stringify(body) });
  assert.ok(res.ok, `${method} ${p} -> ${res.status}`);
  return res;
}

describe("Controls follow the role", () => {
  test("an auditor sees Delete, Save, Resume and Generate disabled with the reason; focus lands on the heading", async () => {
    await apiAsAdmin("POST", "/api/v1/users", { username: "audit-ann", password: "auditor-password-2", role: "auditor" });
    const page = await newPage(browser, { auth: null });
    const beforeSignIn = [];
    page.on("response", (r) => r.status() === 401 && beforeSignIn.push(r.url()));
    await page.goto(dc.base + "/");
    await page.waitForSelector("#signin[open]");
    // No stored token: the page asks at once, the Console is not asked (and answers no 401).
    assert.deepEqual(beforeSignIn, []);
    assert.deepEqual(page.errors, []);
    await page.fill("#signin-user", "audit-ann");
    await page.fill("#signin-password", "auditor-password-2");
    await page.click("#signin-submit");
    await page.waitForSelector("#signin", { state: "hidden" });
    // Focus moves to the view's heading, not <body>.
    await waitFor(async () => (await page.evaluate(() => document.activeElement?.id)) === "h-defenders", { what: "focus on the heading" });
    await waitFor(async () => (await hostsOnPage(page)).length === 50, { what: "rows for the auditor" });

    await page.locator("#rows tr button").first().click();
    await page.waitForSelector("#detail[open]");
    await waitFor(async () => (await page.textContent("#detail-title")) !== "", { what: "detail loaded" });
    assert.ok(await page.isDisabled("#detail-delete"), "Delete is disabled for an auditor");
    assert.match(await page.textContent("#detail-delete-why"), /Your role \(Auditor\) does not allow deleting Defenders/);
    assert.equal(await page.getAttribute("#detail-delete", "aria-describedby"), "detail-delete-why");
    await screenshot(page, "auditor-detail-1280x800.png");
    await page.click("#detail [data-close] >> nth=0");

    await page.click("#open-settings");
    await page.waitForSelector("#settings[open]");
    await waitFor(async () => (await page.inputValue("#s-days")) !== "", { what: "settings loaded" });
    assert.ok(await page.isDisabled("#s-save"), "Save settings is disabled for an auditor");
    assert.ok(await page.evaluate(() => document.getElementById("s-days").readOnly));
    assert.match(await page.textContent("#s-save-why"), /does not allow changing settings/);
    await page.click("#settings [data-close]");

    await page.click('.nav a[data-view="protect"]');
    await page.waitForSelector("#view-protect:not([hidden])");
    assert.ok(await page.isDisabled("#p-generate"), "Generate is disabled for an auditor");
    assert.match(await page.textContent("#p-generate-why"), /does not allow protecting task definitions/);

    // The Console still refuses: the page only stops offering it.
    const token = await page.evaluate(() => sessionStorage.getItem("dcToken"));
    const refused = await fetch(`${dc.base}/api/v1/defenders/${fargate[0].hostname}`, { method: "DELETE", headers: { Authorization: `Bearer ${token}` } });
    assert.equal(refused.status, 403);
    assert.equal((await dc.get(`/api/v1/defenders/${fargate[0].hostname}`)).status, 200);
    await page.context().close();
  });

  test("an administrator gets the same controls enabled", async () => {
    const page = await open("/");
    await page.locator("#rows tr button").first().click();
    await page.waitForSelector("#detail[open]");
    await waitFor(async () => !(await page.isDisabled("#detail-delete")), { what: "Delete enabled" });
    assert.ok(await page.isHidden("#detail-delete-why").catch(() => true));
    await page.context().close();
  });
});

describe("Finding Defenders", () => {
  test("?appID= filters with a chip; clicking an App ID filters to it", async () => {
    const billing = fargate[0].appID;
    const page = await open(`/?appID=${encodeURIComponent(billing)}`);
    await waitFor(async () => (await hostsOnPage(page)).length === 20, { what: "20 billing rows" });
    assert.match(await page.textContent("#chips"), new RegExp(`App ID: ${billing}`));
    await page.click('#chips button[aria-label^="Remove filter App ID"]');
    await waitFor(async () => (await page.textContent("#range")).includes("of 61"), { what: "all rows again" });

    const link = page.locator("#rows tr [data-appid]").first();
    const searchApp = await link.getAttribute("data-appid");
    await link.click();
    await waitFor(async () => query(page).get("appID") === searchApp, { what: "appID in the URL" });
    const expected = fargate.filter((d) => d.appID === searchApp).length || 1; // 1: the App-Embedded one
    await waitFor(async () => (await hostsOnPage(page)).length === expected, { what: "the rows of that App ID" });
    assert.match(await page.textContent("#chips"), new RegExp(`App ID: ${searchApp}`));
    assert.ok(await page.isHidden("#detail"), "the click filtered instead of opening the detail");
    await page.context().close();
  });

  test("search matches the task ARN, the image and the version", async () => {
    const page = await open("/");
    const target = fargate[7];
    const arnPart = target.cloudMetadata.resourceID.split(":").pop(); // task/<cluster>/<task id>
    await page.fill("#f-search", arnPart);
    await waitFor(async () => JSON.stringify(await hostsOnPage(page)) === JSON.stringify([target.hostname]), { what: "ARN hit" });
    await page.fill("#f-search", "dkr.ecr.us-east-1.amazonaws.com/ledger");
    await waitFor(async () => (await hostsOnPage(page)).length === 1, { what: "image hit" });
    await page.fill("#f-search", "33.01.002");
    await waitFor(async () => (await page.textContent("#range")).includes("of 30 Defenders"), { what: "version hits" });
    await page.context().close();
  });

  test("cluster: substring match, suggestions of every cluster with counts; Type menu counts", async () => {
    const page = await open("/?type=appEmbedded&limit=25");
    // Only one cluster is on this page; the suggestions still name all four, with counts.
    await waitFor(async () => (await page.$$eval("#cluster-list option", (o) => o.length)) === 4, { what: "4 suggestions" });
    const options = await page.$$eval("#cluster-list option", (o) => o.map((x) => `${x.value} ${x.label}`));
    assert.deepEqual(options, ["batch-x 1 Defender", "prod-east 20 Defenders", "prod-west 20 Defenders", "staging-eu 20 Defenders"]);
    await page.click("#clear-filters");
    await page.fill("#f-cluster", "PROD");
    await waitFor(async () => query(page).get("clusterContains") === "PROD", { what: "clusterContains in the URL" });
    await waitFor(async () => (await page.textContent("#range")).includes("of 40 Defenders"), { what: "40 prod rows" });
    assert.match(await page.textContent("#chips"), /Cluster contains: “PROD”/);

    await page.click("#type-btn");
    assert.equal(await page.textContent('#type-options [data-count="fargate"]'), "60");
    assert.equal(await page.textContent('#type-options [data-count="appEmbedded"]'), "1");
    assert.equal(await page.textContent('#type-options [data-count="docker"]'), "0");
    await screenshot(page, "defenders-type-counts-1280x800.png");
    await page.context().close();
  });
});

describe("Speed", () => {
  test("a client offering Brotli gets gzip: Brotli's slowest quality is never used", async () => {
    for (const offer of ["gzip, deflate, br", "br, gzip", "gzip, deflate, br, zstd"]) {
      const res = await dc.fetch(`${dc.base}/api/v1/defenders?limit=250`, { headers: { "Accept-Encoding": offer } });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("content-encoding"), "gzip", `offered ${offer}`);
      assert.equal((await res.json()).length, 61);
    }
    const brOnly = await dc.fetch(`${dc.base}/api/v1/defenders?limit=250`, { headers: { "Accept-Encoding": "br" } });
    assert.equal(brOnly.headers.get("content-encoding"), null, "only br offered: sent uncompressed");
    assert.equal((await brOnly.json()).length, 61);
  });
});

describe("Liveness of the page", () => {
  test("a frozen Console shows 'Console not responding' with the age of the data; recovery clears it", async () => {
    const page = await open("/");
    await waitFor(async () => (await page.textContent("#conn-text")) === "Console connected", { what: "connected" });
    process.kill(dc.pid, "SIGSTOP");
    try {
      await waitFor(async () => (await page.textContent("#conn-text")) === "Console not responding", { timeoutMs: 15000, what: "not responding" });
      const banner = await page.textContent("#banner");
      assert.match(banner, /Console not responding\. No answer for \d+ s\. Showing data from \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(\d+ s old\)\./);
      assert.equal((await hostsOnPage(page)).length, 50, "the last data stays on screen");
      await screenshot(page, "console-not-responding-1280x800.png");
    } finally {
      process.kill(dc.pid, "SIGCONT");
    }
    await waitFor(async () => (await page.textContent("#conn-text")) === "Console connected", { timeoutMs: 15000, what: "connected again" });
    assert.ok(await page.isHidden("#banner"));
    await page.context().close();
  });
});

describe("Table", () => {
  test("sticky header, IDs on one line, Last seen column, first/last page and page jump", async () => {
    const page = await open("/");
    await waitFor(async () => (await hostsOnPage(page)).length === 50, { what: "50 rows" });
    assert.ok(await page.isVisible('th[data-sort="lastSeen"]'));
    const seen = await page.$eval(`#rows tr td[data-label="Last seen"] time`, (t) => t.getAttribute("datetime"));
    assert.ok(seen && !Number.isNaN(Date.parse(seen)));
    // No row wraps: every row is one line high, the long App-Embedded label included.
    const heights = await page.$$eval("#rows tr", (rows) => rows.map((r) => r.getBoundingClientRect().height));
    assert.ok(Math.max(...heights) < 40, `tallest row ${Math.max(...heights)} px`);
    const appId = page.locator("#rows tr [data-appid]").first();
    assert.equal(await appId.getAttribute("title"), await appId.textContent(), "the full App ID is in the title");
    const visibleRows = await page.$$eval("#rows tr", (rows) => rows.filter((r) => r.getBoundingClientRect().bottom <= window.innerHeight).length);
    assert.ok(visibleRows >= 15, `${visibleRows} rows fit at 1280×800`);
    // Nothing is pushed off to the right.
    const right = await page.$eval('th[data-sort="lastModified"]', (th) => th.getBoundingClientRect().right);
    assert.ok(right <= 1280, `Last modified ends at ${right}px`);

    // The header stays visible when the table scrolls.
    const wrapTop = await page.$eval("#view-defenders .table-wrap", (w) => w.getBoundingClientRect().top);
    await page.$eval("#view-defenders .table-wrap", (w) => (w.scrollTop = 600));
    const thTop = await page.$eval('th[data-sort="hostname"]', (th) => th.getBoundingClientRect().top);
    assert.ok(Math.abs(thTop - wrapTop) <= 2, `header at ${thTop}, table top at ${wrapTop}`);
    await screenshot(page, "defenders-table-scrolled-1280x800.png");

    await page.click("#last");
    await waitFor(async () => query(page).get("offset") === "50", { what: "last page" });
    await waitFor(async () => (await hostsOnPage(page)).length === 11, { what: "11 rows on the last page" });
    assert.ok(await page.isDisabled("#last"));
    await page.fill("#page-jump", "1");
    await page.press("#page-jump", "Enter");
    await waitFor(async () => query(page).get("offset") === null, { what: "page 1" });
    await page.fill("#page-jump", "9");
    await page.press("#page-jump", "Enter");
    await waitFor(async () => query(page).get("offset") === "50", { what: "a page past the end goes to the last" });
    await page.context().close();
  });

  test("text selected in the table survives refreshes", async () => {
    const page = await open("/?type=fargate");
    await waitFor(async () => (await hostsOnPage(page)).length === 50, { what: "rows" });
    const host = (await hostsOnPage(page))[3];
    await page.$eval(`#rows tr[data-host="${host}"] td.host button`, (el) => {
      const r = document.createRange();
      r.selectNodeContents(el);
      getSelection().removeAllRanges();
      getSelection().addRange(r);
    });
    // Two refreshes while the fleet heartbeats (lastSeen changes in every row).
    for (let i = 0; i < 2; i++) {
      const updated = await page.textContent("#updated");
      await waitFor(async () => (await page.textContent("#updated")) !== updated, { timeoutMs: 15000, what: "a refresh" });
    }
    assert.equal(await page.evaluate(() => getSelection().toString()), host);
    await page.context().close();
  });

  test("compact rows are remembered for the user", async () => {
    const page = await open("/");
    const tall = await page.$eval("#rows tr", (r) => r.getBoundingClientRect().height);
    await page.check("#compact");
    assert.ok(await page.$eval("#grid", (g) => g.classList.contains("compact")));
    const short = await page.$eval("#rows tr", (r) => r.getBoundingClientRect().height);
    assert.ok(short < tall, `compact ${short} px < ${tall} px`);
    assert.equal(await page.evaluate(() => localStorage.getItem("dcPrefs:admin")), JSON.stringify({ compact: true }));
    await page.reload();
    await page.waitForSelector("#rows tr");
    await waitFor(async () => page.isChecked("#compact"), { what: "compact after reload" });
    await page.uncheck("#compact");
    await page.context().close();
  });
});

describe("Column chooser", () => {
  test("hidden columns are remembered per user", async () => {
    const page = await open("/");
    await page.click("#columns summary");
    await page.getByLabel("App ID", { exact: true }).uncheck();
    await page.getByLabel("Last modified", { exact: true }).uncheck();
    assert.ok(await page.isHidden('th[data-sort="appID"]'));
    assert.ok(await page.isHidden('#rows tr td[data-col="appID"] >> nth=0'));
    assert.ok(await page.isVisible('th[data-sort="cluster"]'));
    assert.deepEqual(JSON.parse(await page.evaluate(() => localStorage.getItem("dcPrefs:admin"))).hiddenColumns, ["appID", "lastModified"]);
    await page.reload();
    await page.waitForSelector("#rows tr");
    await waitFor(async () => page.isHidden('th[data-sort="lastModified"]'), { what: "still hidden after a reload" });
    // The choice is stored under the signed-in user's name: another user's is another key.
    assert.equal(await page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith("dcPrefs:")).join()), "dcPrefs:admin");
    await page.evaluate(() => localStorage.setItem("dcPrefs:admin", JSON.stringify({})));
    await page.reload();
    await page.waitForSelector("#rows tr");
    await waitFor(async () => page.isVisible('th[data-sort="appID"]'), { what: "all columns again" });
    await page.context().close();
  });
});

describe("Keyboard and small screens", () => {
  test("after a delete, focus moves to the next row", async () => {
    const page = await open("/");
    await waitFor(async () => (await hostsOnPage(page)).length === 50, { what: "rows" });
    const hosts = await hostsOnPage(page);
    const victim = hosts[4];
    await fleet.silence(victim);
    await page.locator(`#rows tr[data-host="${victim}"] td.host button`).click();
    await page.waitForSelector("#detail[open]");
    await waitFor(async () => !(await page.isDisabled("#detail-delete")), { what: "Delete enabled" });
    await page.click("#detail-delete");
    await page.click("#confirm-delete");
    await page.waitForSelector("#detail", { state: "hidden" });
    await waitFor(async () => !(await hostsOnPage(page)).includes(victim), { what: "row gone" });
    await waitFor(async () => (await page.evaluate(() => document.activeElement?.closest("tr")?.dataset.host)) === hosts[5], { what: "focus on the next row" });
    await page.context().close();
  });

  test("tiles' accessible names contain their visible text", async () => {
    const page = await open("/");
    await waitFor(async () => /connected/.test(await page.textContent('.tile[data-cat="appEmbedded"]')), { what: "tile counts" });
    // Each name is computed from the visible text (no aria-label replaces it), in its order,
    // with what a press does after it: the category's button, and one button per number.
    for (const name of ["App-Embedded", "Container", "Host", "Serverless"]) {
      const tile = page.locator(".tile", { has: page.locator(".t-name", { hasText: new RegExp(`^${name}$`) }) });
      assert.equal(await tile.getAttribute("aria-label"), null);
      const [total, connected, disconnected] = await tile.evaluate((el) => [
        el.querySelector(".t-total").firstChild.textContent.trim(),
        el.querySelector(".c").textContent,
        el.querySelector(".d").textContent,
      ]);
      const named = (re) => page.getByRole("button", { name: re }).count();
      assert.equal(await named(new RegExp(`^${name}\\s*${total} deployed.*filter the table to ${name} types$`)), 1, `${name}: the category button`);
      assert.equal(await named(new RegExp(`^${connected} connected\\s*, filter the table to connected ${name} Defenders$`)), 1, `${name}: connected`);
      assert.equal(await named(new RegExp(`^${disconnected} disconnected\\s*, filter the table to disconnected ${name} Defenders$`)), 1, `${name}: disconnected`);
    }
    await page.context().close();
  });

  test("at 400 px the navigation fits: every link visible, no sideways strip", async () => {
    const page = await open("/", { width: 400, height: 800 });
    const links = await page.$$eval(".nav a", (as) => as.map((a) => a.getBoundingClientRect()).map((r) => ({ left: r.left, right: r.right, w: r.width })));
    assert.equal(links.length, 5); // Deployed Defenders, Fleet history, Audit, Protect a task, API reference
    for (const l of links) assert.ok(l.left >= 0 && l.right <= 400 && l.w > 0, JSON.stringify(l));
    const nav = await page.$eval(".nav", (n) => ({ scroll: n.scrollWidth, client: n.clientWidth, width: n.getBoundingClientRect().width }));
    assert.ok(nav.scroll <= nav.client + 1, `nav scrolls sideways: ${JSON.stringify(nav)}`);
    assert.ok(nav.width > 300, `nav is ${nav.width}px wide`);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 1, `page overflows by ${overflow}px`);
    await screenshot(page, "defenders-nav-400px.png");
    await page.context().close();
  });
});
