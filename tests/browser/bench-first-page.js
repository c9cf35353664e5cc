// First page of Deployed Defenders against a running Console (docs/benchmarks.md "First page in
// the browser"): time from navigation to the first row put in the table (a MutationObserver in
// the page, so the harness's own polling does not count), when the harness saw it, and the list
// request's start and duration as the browser saw them. Not a test (run.sh runs *.test.js only).
// Usage: node tests/browser/bench-first-page.js BASE_URL ADMIN_PASSWORD [RUNS] [PATH]
//   e.g. node tests/browser/bench-first-page.js http://127.0.0.1:18083 secret 5 /
"use strict";

const { launch } = require("./lib/browser");

async function main() {
  const [base, password, runsText = "5", path = "/"] = process.argv.slice(2);
  if (!base || !password) throw new Error("usage: bench-first-page.js BASE_URL ADMIN_PASSWORD [RUNS] [PATH]");
  const signedIn = await fetch(`${base}/api/v1/authenticate`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username: "admin", password }),
  });
  if (!signedIn.ok) throw new Error(`sign-in: ${signedIn.status}`);
  const token = (await signedIn.json()).token;
  const browser = await launch();
  const rows = [];
  for (let i = 0; i < Number(runsText); i++) {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    await context.addInitScript((t) => {
      sessionStorage.setItem("dcToken", t);
      sessionStorage.setItem("dcUser", "admin");
      // When the first row is put in the table (a MutationObserver, before paint).
      new MutationObserver((_, obs) => {
        if (document.querySelector("#rows tr")) {
          window.__firstRowInserted = performance.now();
          obs.disconnect();
        }
      }).observe(document, { childList: true, subtree: true });
    }, token);
    const page = await context.newPage();
    await page.goto(base + path, { waitUntil: "commit" });
    // Polled every animation frame: the figure is late by at most one frame (~16 ms).
    await page.waitForFunction(() => document.querySelector("#rows tr"), null, { polling: "raf", timeout: 60000 });
    const t = await page.evaluate(() => {
      const list = performance.getEntriesByType("resource").find((e) => /\/api\/v1\/defenders\?/.test(e.name));
      const summary = performance.getEntriesByType("resource").find((e) => /\/api\/v1\/defenders\/summary/.test(e.name));
      const nav = performance.getEntriesByType("navigation")[0];
      const at = (re) => {
        const e = performance.getEntriesByType("resource").find((x) => re.test(x.name));
        return e ? `${Math.round(e.startTime)}+${Math.round(e.duration)}` : null;
      };
      return {
        firstRowsMs: Math.round(performance.now()),
        insertedMs: Math.round(window.__firstRowInserted),
        domContentLoadedMs: Math.round(nav.domContentLoadedEventEnd),
        appJs: at(/app\.js/),
        version: at(/\/api\/v1\/version$/),
        listMs: list ? Math.round(list.duration) : null,
        listStartMs: list ? Math.round(list.startTime) : null,
        summaryMs: summary ? Math.round(summary.duration) : null,
      };
    });
    rows.push(t);
    console.log(JSON.stringify(t));
    await context.close();
    // Let the Console finish what the page asked for after the rows (the counts read the whole
    // inventory), so that the next run starts from an idle Console.
    await new Promise((r) => setTimeout(r, 4000));
  }
  const med = (k) => rows.map((r) => r[k]).sort((a, b) => a - b)[Math.floor(rows.length / 2)];
  console.log(`median: first row in the table ${med("insertedMs")} ms (seen by the harness at ${med("firstRowsMs")} ms); list request ${med("listMs")} ms (started at ${med("listStartMs")} ms); summary ${med("summaryMs")} ms`);
  await browser.close();
}
main().catch((e) => {
  console.error(e);
  process.exit(1);
});
