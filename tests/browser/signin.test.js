// Browser tests of signing in to the web page: the page itself carries no credentials here
// (unlike the other suites, whose pages send the test admin's Basic credentials).
"use strict";

const { test, before, after, describe } = require("node:test");
const assert = require("node:assert/strict");
const { startConsole, fargateDefender, waitFor, ADMIN_USER, ADMIN_PASSWORD } = require("./lib/console");
const { launch, newPage, screenshot } = require("./lib/browser");

let dc;
let browser;
const fleet = [fargateDefender({ family: "billing" }), fargateDefender({ family: "billing" }), fargateDefender({ family: "search" })];

before(async () => {
  dc = await startConsole();
  for (const d of fleet) await dc.heartbeat(d);
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await dc?.stop();
});

async function apiAsAdmin(method, p, body) {
  const res = await dc.fetch(dc.base + p, {
    method,
    headers: { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  assert.ok(res.ok, `${method} ${p} -> ${res.status}: ${text}`);
  return text ? JSON.parse(text) : null;
}

async function signIn(page, user, password) {
  await page.fill("#signin-user", user);
  await page.fill("#signin-password", password);
  await page.click("#signin-submit");
}

describe("Sign in", () => {
  test("the page asks to sign in, refuses a wrong password, then shows the inventory and the user", async () => {
    const page = await newPage(browser, { auth: null });
    await page.goto(dc.base + "/?type=fargate");
    await page.waitForSelector("#signin[open]");
    assert.equal(await page.locator("#rows tr").count(), 0, "no data before signing in");
    // Escape does not skip signing in.
    await page.keyboard.press("Escape");
    assert.ok(await page.isVisible("#signin"));

    await signIn(page, ADMIN_USER, "not-the-password");
    await waitFor(async () => (await page.textContent("#signin-error")).includes("Wrong username or password"), { what: "wrong-password message" });
    assert.ok(await page.isVisible("#signin"));
    await screenshot(page, "signin-wrong-password.png");

    await signIn(page, ADMIN_USER, ADMIN_PASSWORD);
    await page.waitForSelector("#signin", { state: "hidden" });
    await waitFor(async () => (await page.locator("#rows tr").count()) === fleet.length, { what: "3 Fargate rows" });
    assert.match(await page.textContent("#user-name"), /admin · Administrator/);
    // The filter in the URL survived signing in.
    assert.equal(new URL(page.url()).searchParams.get("type"), "fargate");
    const token = await page.evaluate(() => sessionStorage.getItem("dcToken"));
    assert.ok(token && token.length > 20, "a bearer token is kept for this tab");
    assert.deepEqual(page.errors.filter((e) => !/401/.test(e)), []);
    await page.close();
  });

  test("an ended session (password changed) asks again and the page resumes where it was; sign out", async () => {
    await apiAsAdmin("POST", "/api/v1/users", { username: "ops-jane", password: "first-password-1", role: "defenderManager" });
    const page = await newPage(browser, { auth: null });
    await page.goto(dc.base + "/?search=" + fleet[2].hostname.slice(0, 12));
    await page.waitForSelector("#signin[open]");
    await signIn(page, "ops-jane", "first-password-1");
    await waitFor(async () => (await page.locator("#rows tr").count()) === 1, { what: "the searched row" });
    assert.match(await page.textContent("#user-name"), /ops-jane · Defender Manager/);

    // Changing the password revokes the user's tokens: the next refresh gets 401.
    await apiAsAdmin("PUT", "/api/v1/users/ops-jane", { password: "second-password-2" });
    await page.waitForSelector("#signin[open]", { timeout: 15000 });
    assert.match(await page.textContent("#signin-error"), /session has ended/);
    assert.equal(await page.inputValue("#signin-user"), "ops-jane", "the username is kept");
    await signIn(page, "ops-jane", "second-password-2");
    await page.waitForSelector("#signin", { state: "hidden" });
    await waitFor(async () => (await page.locator("#rows tr").count()) === 1, { what: "the same view after signing in again" });
    assert.equal(await page.locator("#rows tr").first().getAttribute("data-host"), fleet[2].hostname);

    // Something generated while signed in (a protected task carries a Defender credential)…
    await page.goto(dc.base + "/?view=protect");
    await page.fill("#p-input", JSON.stringify({ family: "web", networkMode: "awsvpc", requiresCompatibilities: ["FARGATE"], containerDefinitions: [{ name: "web", image: "nginx", entryPoint: ["/start"] }] }));
    await page.click("#p-generate");
    await waitFor(async () => /INSTALL_BUNDLE/.test(await page.inputValue("#p-output").catch(() => "")) || /INSTALL_BUNDLE/.test((await page.textContent("#p-output")) ?? ""), { what: "protected output" });
    // …is gone after signing out.
    await page.click("#sign-out");
    await page.waitForSelector("#signin[open]");
    assert.ok(!/INSTALL_BUNDLE/.test(await page.content()), "no Defender credential left on the page");
    assert.equal(await page.evaluate(() => sessionStorage.getItem("dcToken")), null, "the token is dropped");
    assert.ok(await page.isHidden("#user"));
    await page.close();
  });

  test("an auditor reads but is told why deleting is not offered", async () => {
    await apiAsAdmin("POST", "/api/v1/users", { username: "audit-sam", password: "auditor-password-1", role: "auditor" });
    const page = await newPage(browser, { auth: null });
    await page.goto(dc.base + "/");
    await page.waitForSelector("#signin[open]");
    await signIn(page, "audit-sam", "auditor-password-1");
    await waitFor(async () => (await page.locator("#rows tr").count()) === fleet.length, { what: "rows for the auditor" });
    assert.match(await page.textContent("#user-name"), /audit-sam · Auditor/);

    await page.locator(`#rows tr[data-host="${fleet[0].hostname}"] button`).first().click();
    await page.waitForSelector("#detail[open]");
    // Delete is not offered: disabled, with the reason naming the role.
    await waitFor(async () => (await page.textContent("#detail-title")) === fleet[0].hostname, { what: "detail loaded" });
    assert.ok(await page.isDisabled("#detail-delete"));
    assert.match(await page.textContent("#detail-delete-why"), /Your role \(Auditor\) does not allow deleting Defenders/);
    // Nothing was deleted.
    const still = await dc.get(`/api/v1/defenders/${fleet[0].hostname}`);
    assert.equal(still.status, 200);
    await screenshot(page, "signin-auditor-delete-disabled.png");
    await page.close();
  });
});
