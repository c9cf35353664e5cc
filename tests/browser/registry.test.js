// Browser test of the registry credentials section of "Protect a task": add a credential, see it
// listed without its secret (in the table, the page and the API), offered to the
// "Registry credential ID" field, then delete it. Run with tests/browser/run.sh.
"use strict";

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { startConsole } = require("./lib/console");
const { launch, newPage } = require("./lib/browser");

let dc;
let browser;

before(async () => {
  dc = await startConsole();
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await dc?.stop();
});

test("registry credentials: add, listed without the secret, offered to the embed form, delete", async () => {
  const page = await newPage(browser);
  await page.goto(dc.base + "/?view=protect");
  await page.waitForSelector("#regcred-empty:not([hidden])");

  await page.selectOption("#rc-type", "aws");
  assert.equal(await page.textContent("#rc-secret-label"), "Secret access key");
  await page.fill("#rc-id", "ecr-prod");
  await page.fill("#rc-account", "AKIDEXAMPLE");
  const secret = "wJalrXUtnFEMI-browser-secret";
  await page.fill("#rc-secret", secret);
  await page.fill("#rc-desc", "prod ECR");
  const [res] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith("/api/v1/registry/credentials") && r.request().method() === "POST"),
    page.click("#rc-save"),
  ]);
  assert.equal(res.status(), 201);
  await page.waitForSelector('#regcred-rows button[data-regcred="ecr-prod"]');

  const row = await page.textContent("#regcred-rows");
  assert.match(row, /ecr-prod/);
  assert.match(row, /AKIDEXAMPLE/);
  assert.match(row, /AWS access key \(ECR\)/);
  assert.equal(await page.inputValue("#rc-secret"), "", "the secret field is emptied");
  assert.ok(!(await page.content()).includes(secret), "the secret is nowhere on the page");
  const listed = await (await dc.fetch(dc.base + "/api/v1/registry/credentials")).text();
  assert.ok(!listed.includes(secret), "the API never returns the secret");
  assert.equal(await page.$eval("#p-cred-list option", (o) => o.value), "ecr-prod");

  await Promise.all([
    page.waitForResponse((r) => r.url().endsWith("/api/v1/registry/credentials/ecr-prod") && r.request().method() === "DELETE"),
    page.click('#regcred-rows button[data-regcred="ecr-prod"]'),
  ]);
  await page.waitForSelector("#regcred-empty:not([hidden])");
  assert.deepEqual(JSON.parse(await (await dc.fetch(dc.base + "/api/v1/registry/credentials")).text()), []);
  assert.deepEqual(page.errors, []);
});
