// Browser tests of the "Protect a task" page (embed flow) against a real Console: paste a task
// definition, generate the protected one, read the issued App ID, and see the Console's errors
// pointed at the input. Run with tests/browser/run.sh.
"use strict";

const { test, before, after, describe } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");
const { startConsole, waitFor, REPO } = require("./lib/console");
const { launch, newPage, screenshot } = require("./lib/browser");

const CORPUS = path.join(REPO, "tests", "embed", "corpus");
// The vendor documentation's "standard JSON format task definition" example, verbatim.
const SEED_NATIVE = fs.readFileSync(path.join(CORPUS, "native-seed-web", "input.json"), "utf8");
// The vendor documentation's full YAML CloudFormation template example.
const SEED_CFN_YAML = fs.readFileSync(path.join(CORPUS, "cfn-template-yaml", "input.yaml"), "utf8");
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

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

// Fills the input, clicks Generate and returns the embed response the page received.
async function generate(page, text) {
  await page.fill("#p-input", text);
  const [res] = await Promise.all([
    page.waitForResponse((r) => /\/api\/v1\/defenders\/fargate\.(json|yaml)\?/.test(r.url()) && r.request().method() === "POST"),
    page.click("#p-generate"),
  ]);
  return res;
}

// 1-based line of the textarea's selection start.
const selectionLine = (page) =>
  page.$eval("#p-input", (ta) => ta.value.slice(0, ta.selectionStart).split("\n").length);
const selectedText = (page) => page.$eval("#p-input", (ta) => ta.value.slice(ta.selectionStart, ta.selectionEnd));

describe("Protect a task", () => {
  test("the seed's native task definition gets the TwistlockDefender sidecar and an App ID", async () => {
    const page = await openProtect();
    await page.context().grantPermissions(["clipboard-read", "clipboard-write"], { origin: dc.base });
    assert.equal(await page.inputValue("#p-consoleaddr"), "127.0.0.1", "Console address is prefilled with the page's host");
    assert.equal(await page.isChecked('input[name="template"][value="native"]'), true);
    assert.equal(await page.isDisabled("#p-copy"), true, "nothing to copy yet");

    const res = await generate(page, SEED_NATIVE);
    assert.equal(res.status(), 200);
    const url = new URL(res.url());
    assert.equal(url.pathname, "/api/v1/defenders/fargate.json");
    assert.equal(url.searchParams.get("consoleaddr"), "127.0.0.1");
    assert.equal(url.searchParams.get("cloudFormation"), "false");
    assert.equal(url.searchParams.get("filesystemMonitoring"), "false");
    assert.equal(url.searchParams.get("extractEntrypoint"), "false");
    const header = res.headers()["x-defender-app-ids"];
    assert.match(header, /^webserver:/);

    await page.waitForFunction(() => document.querySelector("#p-output").value.length > 0);
    const out = await page.inputValue("#p-output");
    assert.equal(await page.getAttribute("#p-output", "readonly"), "");
    const doc = JSON.parse(out);
    const names = doc.containerDefinitions.map((c) => c.name);
    assert.deepEqual(names, ["web", "TwistlockDefender"]);
    const sidecar = doc.containerDefinitions[1];
    const env = Object.fromEntries(sidecar.environment.map((e) => [e.name, e.value]));
    assert.equal(env.DEFENDER_APP_ID, header);
    assert.equal(env.CONSOLE_HOST, "127.0.0.1");
    assert.deepEqual(doc.containerDefinitions[0].entryPoint, ["/var/lib/twistlock/fargate/defender", "fargate", "entrypoint", "/http_server"]);

    // The App ID shown is the header's; the issued table lists it first, marked new.
    assert.equal((await page.textContent("#p-appids")).trim(), header);
    const [, uuid] = header.split(":");
    assert.match(uuid, UUID);
    await waitFor(async () => (await page.textContent("#appids-rows tr:first-child")).includes(header), { what: "App ID in the table" });
    assert.match(await page.textContent("#appids-rows tr:first-child"), /webserver.*Native JSON/s);
    assert.match(await page.textContent("#appids-range"), /1 total/);
    assert.equal(await page.isVisible("#p-error"), false);

    await screenshot(page, "protect-task-1280x800.png");

    // Copy puts the protected document on the clipboard.
    assert.equal(await page.isEnabled("#p-copy"), true);
    await page.click("#p-copy");
    await waitFor(async () => (await page.textContent("#p-copy")) === "Copied", { what: "Copied" });
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), out);
    assert.equal(await page.getAttribute("#p-download", "download"), "protected_taskdef.json");
    assert.deepEqual(page.errors, []);
    await page.close();
  });

  test("a CloudFormation YAML template goes to fargate.yaml with cloudFormation=true", async () => {
    const page = await openProtect();
    assert.equal(await page.isDisabled('input[name="format"][value="yaml"]'), true, "format applies to CloudFormation only");
    await page.getByLabel("CloudFormation", { exact: true }).check();
    await page.getByLabel("YAML", { exact: true }).check();
    await page.getByLabel("Enable file system runtime protection").check();
    assert.equal(await page.isVisible("#p-fs-note"), true);
    const res = await generate(page, SEED_CFN_YAML);
    assert.equal(res.status(), 200);
    const url = new URL(res.url());
    assert.equal(url.pathname, "/api/v1/defenders/fargate.yaml");
    assert.equal(url.searchParams.get("cloudFormation"), "true");
    assert.equal(url.searchParams.get("filesystemMonitoring"), "true");
    const header = res.headers()["x-defender-app-ids"];
    assert.match(header, /^TASK-NAME:[0-9a-f-]{36}$/);

    await page.waitForFunction(() => document.querySelector("#p-output").value.length > 0);
    const out = await page.inputValue("#p-output");
    assert.match(out, /Name: TwistlockDefender/);
    assert.match(out, /FILESYSTEM_MONITORING/);
    assert.match(out, /HelloLambdaRole/, "other resources are kept");
    assert.ok(out.includes(header), "the App ID is in the sidecar's environment");
    assert.equal((await page.textContent("#p-appids")).trim(), header);
    await waitFor(async () => (await page.textContent("#appids-rows tr:first-child")).includes(header), { what: "App ID in the table" });
    const row = await page.textContent("#appids-rows tr:first-child");
    assert.match(row, /CloudFormation YAML/);
    assert.match(row, /Resources\.fargateTaskDefinition\.Properties/);
    assert.equal(await page.getAttribute("#p-download", "download"), "protected_taskdef.yaml");
    assert.deepEqual(page.errors, []);
    await page.close();
  });

  test("truncated JSON: invalid_json shown next to the input, cursor on the line", async () => {
    const page = await openProtect();
    const broken = '{\n  "family": "broken",\n  "containerDefinitions": [\n    {"name": "web", "image": "nginx",}\n  ]\n}';
    const res = await generate(page, broken);
    assert.equal(res.status(), 400);
    await page.waitForSelector("#p-error:not([hidden])");
    assert.equal(await page.textContent("#p-error-code"), "invalid_json");
    assert.match(await page.textContent("#p-error-message"), /line 4/);
    assert.match(await page.textContent("#p-goto"), /Go to line 4/);
    assert.equal(await page.getAttribute("#p-input", "aria-invalid"), "true");
    assert.equal(await page.evaluate(() => document.activeElement.id), "p-input");
    assert.equal(await selectionLine(page), 4);
    assert.equal(await page.textContent("#p-gutter .err"), "4");
    assert.equal(await page.inputValue("#p-output"), "", "no partial output");
    assert.equal(await page.isDisabled("#p-copy"), true);

    // Cut off mid-document.
    await generate(page, SEED_NATIVE.slice(0, 60));
    await waitFor(async () => (await page.textContent("#p-error-message")).includes("line 1"), { what: "new error" });
    assert.equal(await page.textContent("#p-error-code"), "invalid_json");

    // Fixing the input clears the error.
    await generate(page, SEED_NATIVE);
    await page.waitForSelector("#p-error", { state: "hidden" });
    assert.equal(await page.getAttribute("#p-input", "aria-invalid"), null);
    assert.equal(await page.$("#p-gutter .err"), null);
    await page.close();
  });

  test("a non-Fargate task definition: not_fargate with its path selected in the input", async () => {
    const page = await openProtect();
    const bridge = JSON.stringify(
      {
        family: "legacy",
        containerDefinitions: [{ name: "web", image: "nginx", entryPoint: ["/http_server"] }],
        networkMode: "bridge",
        requiresCompatibilities: ["EC2"],
      },
      null,
      2,
    );
    const res = await generate(page, bridge);
    assert.equal(res.status(), 400);
    await page.waitForSelector("#p-error:not([hidden])");
    assert.equal(await page.textContent("#p-error-code"), "not_fargate");
    assert.equal(await page.textContent("#p-error-field"), "networkMode");
    const line = bridge.split("\n").findIndex((l) => l.includes('"networkMode"')) + 1;
    assert.equal(await selectionLine(page), line);
    assert.equal(await selectedText(page), '"networkMode"');
    assert.equal(await page.textContent("#p-gutter .err"), String(line));
    await screenshot(page, "protect-task-error-1280x800.png");
    await page.close();
  });

  test("a YAML error names its line: the cursor moves there; Go to line works from the keyboard", async () => {
    const page = await openProtect();
    await page.getByLabel("CloudFormation", { exact: true }).check();
    await page.getByLabel("YAML", { exact: true }).check();
    const yaml = fs.readFileSync(path.join(CORPUS, "err-yaml-number-in-argv", "input.yaml"), "utf8");
    await generate(page, yaml);
    await page.waitForSelector("#p-error:not([hidden])");
    assert.equal(await page.textContent("#p-error-code"), "invalid_type");
    assert.equal(await page.textContent("#p-error-field"), "Properties.ContainerDefinitions[0].EntryPoint[2]");
    assert.equal(await selectionLine(page), 9);
    assert.equal(await selectedText(page), yaml.split("\n")[8]);
    // Move away, then back with the button (keyboard).
    await page.$eval("#p-input", (ta) => ta.setSelectionRange(0, 0));
    await page.focus("#p-goto");
    await page.keyboard.press("Enter");
    assert.equal(await selectionLine(page), 9);
    await page.close();
  });

  test("a template in the wrong type: format_mismatch offers to switch, and generating then works", async () => {
    const page = await openProtect();
    const cfn = fs.readFileSync(path.join(CORPUS, "cfn-resource-json", "input.json"), "utf8");
    await generate(page, cfn);
    await page.waitForSelector("#p-error:not([hidden])");
    assert.equal(await page.textContent("#p-error-code"), "format_mismatch");
    const [res] = await Promise.all([
      page.waitForResponse((r) => r.url().includes("/fargate.json?") && r.request().method() === "POST"),
      page.click("#p-switch"),
    ]);
    assert.equal(res.status(), 200);
    assert.equal(new URL(res.url()).searchParams.get("cloudFormation"), "true");
    assert.equal(await page.isChecked('input[name="template"][value="cloudformation"]'), true);
    await page.waitForSelector("#p-error", { state: "hidden" });
    assert.match(await page.inputValue("#p-output"), /TwistlockDefender/);
    await page.close();
  });

  test("entrypoint_required names the container; extract entrypoint sends the registry options", async () => {
    const page = await openProtect();
    const noEntry = JSON.stringify({
      family: "shop",
      networkMode: "awsvpc",
      requiresCompatibilities: ["FARGATE"],
      containerDefinitions: [{ name: "web", image: "registry.example.com/shop/web:7" }],
    });
    await generate(page, noEntry);
    await page.waitForSelector("#p-error:not([hidden])");
    assert.equal(await page.textContent("#p-error-code"), "entrypoint_required");
    assert.match(await page.textContent("#p-error-message"), /"web"/);
    assert.equal(await page.isDisabled("#p-registry-type"), true);
    await page.getByLabel("Automatically extract entrypoint").check();
    await page.selectOption("#p-registry-type", "aws");
    await page.fill("#p-cred", "ecr-prod");
    const res = await generate(page, noEntry);
    const q = new URL(res.url()).searchParams;
    assert.equal(q.get("extractEntrypoint"), "true");
    assert.equal(q.get("registryType"), "aws");
    assert.equal(q.get("registryCredentialID"), "ecr-prod");
    assert.equal(res.status(), 400);
    // The image has no record, so the Console would read its registry: with a credential ID
    // that names no stored credential it answers before any network call.
    await waitFor(async () => (await page.textContent("#p-error-code")) === "registry_credential_not_found", {
      what: "registry_credential_not_found",
    });
    assert.match(await page.textContent("#p-error-message"), /"ecr-prod"/);
    await page.close();
  });

  test("labelled, keyboard reachable and readable at ~400 px", async () => {
    const page = await openProtect({ width: 400, height: 860 });
    for (const label of ["Console address", "Native Fargate", "CloudFormation", "Enable file system runtime protection", "Automatically extract entrypoint"])
      assert.equal(await page.getByLabel(label, { exact: true }).count(), 1, label);
    assert.equal(await page.getByLabel(/^Task definition/).count(), 1);
    assert.equal(await page.getByLabel("Protected task definition").count(), 1);
    // Tab from the Console address reaches the input and the Generate button.
    await page.focus("#p-consoleaddr");
    const seen = new Set();
    for (let i = 0; i < 25 && !seen.has("p-generate"); i++) {
      await page.keyboard.press("Tab");
      seen.add(await page.evaluate(() => document.activeElement.id));
    }
    assert.ok(seen.has("p-input") && seen.has("p-generate"), [...seen].join(","));
    // Ctrl+Enter in the input generates.
    await page.fill("#p-input", SEED_NATIVE);
    await page.focus("#p-input");
    const [res] = await Promise.all([
      page.waitForResponse((r) => r.url().includes("/fargate.json?")),
      page.keyboard.press("Control+Enter"),
    ]);
    assert.equal(res.status(), 200);
    await page.waitForFunction(() => document.querySelector("#p-output").value.includes("TwistlockDefender"));
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 0, `no horizontal scrolling (overflow ${overflow}px)`);
    await screenshot(page, "protect-task-400px.png");
    assert.deepEqual(page.errors, []);
    await page.close();
  });
});
