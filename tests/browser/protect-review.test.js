// Browser tests of the "Protect a task" review aids (docs/ui.md "Protect a task"): the pasted
// format is detected and a switch offered, the output is marked as holding a Defender credential,
// and a line diff shows what the Console changed.
"use strict";

const { test, before, after, describe } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");
const { startConsole, waitFor, REPO } = require("./lib/console");
const { launch, newPage, screenshot } = require("./lib/browser");

const CORPUS = path.join(REPO, "tests", "embed", "corpus");
const SEED_NATIVE = fs.readFileSync(path.join(CORPUS, "native-seed-web", "input.json"), "utf8");
const SEED_CFN_YAML = fs.readFileSync(path.join(CORPUS, "cfn-template-yaml", "input.yaml"), "utf8");

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

async function openProtect(size) {
  const page = await newPage(browser, size);
  await page.goto(dc.base + "/?view=protect");
  await page.waitForSelector("#view-protect:not([hidden])");
  return page;
}

describe("Protect a task: review aids", () => {
  test("CloudFormation YAML pasted in Native mode: the page says so and switches on request", async () => {
    const page = await openProtect();
    assert.equal(await page.isChecked('input[name="template"][value="native"]'), true);
    await page.fill("#p-input", SEED_CFN_YAML);
    await page.waitForSelector("#p-detect:not([hidden])");
    assert.match(await page.textContent("#p-detect"), /CloudFormation template in YAML/);
    await page.click("#p-detect-switch");
    assert.equal(await page.isChecked('input[name="template"][value="cloudformation"]'), true);
    assert.equal(await page.isChecked('input[name="format"][value="yaml"]'), true);
    assert.equal(await page.isHidden("#p-detect"), true, "nothing left to switch");
    assert.match(await page.textContent("#p-input-label"), /CloudFormation YAML/);
    // It now generates without a format error.
    const [res] = await Promise.all([
      page.waitForResponse((r) => r.url().includes("/api/v1/defenders/fargate.yaml?")),
      page.click("#p-generate"),
    ]);
    assert.equal(res.status(), 200);

    // Plain YAML that is no CloudFormation template, in Native mode: explained, nothing to switch to.
    await page.click('input[name="template"][value="native"]');
    await page.fill("#p-input", "family: web\ncontainerDefinitions:\n  - name: web\n    image: nginx\n");
    await waitFor(async () => /Native Fargate task definitions are JSON/.test(await page.textContent("#p-detect")), { what: "YAML note" });
    assert.equal(await page.$("#p-detect-switch"), null);
    // A native JSON task definition in CloudFormation mode is offered the way back.
    await page.click('input[name="template"][value="cloudformation"]');
    await page.fill("#p-input", SEED_NATIVE);
    await page.waitForSelector("#p-detect-switch");
    assert.match(await page.textContent("#p-detect-switch"), /Native Fargate/);
    assert.deepEqual(page.errors, []);
    await page.close();
  });

  test("the output is marked as holding a Defender credential and a diff shows what changed", async () => {
    const page = await openProtect();
    assert.equal(await page.isHidden("#p-secret"), true, "no note before there is output");
    await page.fill("#p-input", SEED_NATIVE);
    await Promise.all([
      page.waitForResponse((r) => r.url().includes("/api/v1/defenders/fargate.json?")),
      page.click("#p-generate"),
    ]);
    await page.waitForSelector("#p-secret:not([hidden])");
    assert.match(await page.textContent("#p-secret"), /Contains a Defender credential.*install bundle/s);
    await page.waitForSelector("#p-diff:not([hidden])");
    const stat = await page.textContent("#p-diff-stat");
    const m = /(\d+) lines? added, (\d+) removed/.exec(stat);
    assert.ok(m && Number(m[1]) > 10, stat);
    await page.click("#p-diff summary");
    const added = await page.$$eval("#p-diff-body .dl.add", (els) => els.map((e) => e.textContent).join("\n"));
    assert.match(added, /TwistlockDefender/);
    assert.match(added, /INSTALL_BUNDLE/);
    // The user's own lines (compact JSON re-indented first) are neither added nor removed.
    assert.equal(await page.locator("#p-diff-body .dl:not(.same):not(.fold)", { hasText: '"family"' }).count(), 0);
    assert.ok((await page.locator("#p-diff-body .dl.same").count()) > 0, "unchanged context is shown");
    await screenshot(page, "protect-diff.png");
    // Clearing the input removes the output, the note and the diff.
    await page.click("#p-clear");
    assert.equal(await page.isHidden("#p-secret"), true);
    assert.equal(await page.isHidden("#p-diff"), true);
    assert.deepEqual(page.errors, []);
    await page.close();
  });

  test("image entrypoint records: add, used by extraction, delete; the entrypoint error points to them", async () => {
    const page = await openProtect();
    const task = JSON.stringify({
      family: "ep-check",
      networkMode: "awsvpc",
      requiresCompatibilities: ["FARGATE"],
      cpu: "256",
      memory: "512",
      containerDefinitions: [{ name: "web", image: "nginx:1.27" }],
    });
    // Without extraction the Console asks for the entrypoint; the error offers the records.
    await page.fill("#p-input", task);
    await page.click("#p-generate");
    await page.waitForSelector("#p-goto-entrypoints");
    assert.match(await page.textContent("#p-error-code"), /entrypoint_required/);
    await page.click("#p-goto-entrypoints");
    assert.equal(await page.evaluate(() => document.activeElement.id), "ep-image");

    // A malformed argument list is refused in the page.
    await page.fill("#ep-image", "nginx:1.27");
    await page.fill("#ep-cmd", '["nginx", ');
    await page.click("#ep-save");
    await waitFor(async () => /Cmd: not a valid JSON array/.test(await page.textContent("#ep-msg")), { what: "argv error" });

    await page.fill("#ep-entrypoint", "/docker-entrypoint.sh");
    await page.fill("#ep-cmd", '["nginx", "-g", "daemon off;"]');
    await page.click("#ep-save");
    const row = page.locator("#ep-rows tr", { hasText: "docker.io/library/nginx:1.27" });
    await row.waitFor();
    assert.match(await row.textContent(), /\/docker-entrypoint\.sh.*daemon off;/s);
    assert.match(await page.textContent("#ep-msg"), /saved/);

    // Extraction now finds it (no registry is asked: the record is there).
    await page.check("#p-extract");
    const [res] = await Promise.all([
      page.waitForResponse((r) => r.url().includes("/api/v1/defenders/fargate.json?")),
      page.click("#p-generate"),
    ]);
    assert.equal(res.status(), 200, await res.text());
    const out = JSON.parse(await page.inputValue("#p-output"));
    const web = out.containerDefinitions.find((c) => c.name === "web");
    assert.ok(web.entryPoint.includes("/docker-entrypoint.sh"), JSON.stringify(web.entryPoint));
    await screenshot(page, "protect-entrypoints.png");

    await row.getByRole("button", { name: /Delete/ }).click();
    await waitFor(async () => (await page.locator("#ep-rows tr").count()) === 0, { what: "row deleted" });
    assert.match(await page.textContent("#ep-msg"), /deleted/);
    assert.equal((await dc.get("/api/v1/images/entrypoints")).headers.get("Total-Count"), "0");
    // The one refused generate is logged by the browser as a failed resource; nothing else.
    assert.deepEqual(page.errors.filter((e) => !/status of 400/.test(e)), []);
    await page.close();
  });
});
