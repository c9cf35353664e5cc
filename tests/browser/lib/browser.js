// Launches Debian's Chromium headless through playwright-core (no browser download).
"use strict";

const fs = require("node:fs");
const path = require("node:path");
const { chromium } = require("playwright-core");
const { BASIC_AUTH, session } = require("./console");

const ARTIFACTS = path.join(__dirname, "..", "artifacts");

function chromiumPath() {
  for (const p of [process.env.CHROMIUM_PATH, "/usr/bin/chromium", "/usr/bin/chromium-browser"])
    if (p && fs.existsSync(p)) return p;
  throw new Error("Chromium not found: install it (scripts/install-deps.sh --test) or set CHROMIUM_PATH");
}

async function launch() {
  return chromium.launch({
    executablePath: chromiumPath(),
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

// A page whose console errors and failed requests are collected, so tests can assert on them.
// Its requests carry the test admin's HTTP Basic credentials (`auth: null` for none), as a
// signed-in page's would carry its token.
async function newPage(browser, { width = 1280, height = 800, auth = BASIC_AUTH } = {}) {
  const context = await browser.newContext({
    viewport: { width, height },
    timezoneId: "America/Los_Angeles",
    extraHTTPHeaders: auth ? { Authorization: auth } : {},
  });
  // A page of the admin starts signed in, as a tab that signed in earlier: the token the page
  // keeps in sessionStorage (its requests also carry the Basic header above).
  if (auth === BASIC_AUTH && session.current)
    await context.addInitScript(({ token, user }) => {
      if (!sessionStorage.getItem("dcToken")) {
        sessionStorage.setItem("dcToken", token);
        sessionStorage.setItem("dcUser", user);
      }
    }, session.current);
  const page = await context.newPage();
  page.errors = [];
  page.on("pageerror", (e) => page.errors.push(String(e)));
  page.on("console", (m) => m.type() === "error" && page.errors.push(m.text()));
  return page;
}

async function screenshot(page, name) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, name);
  await page.screenshot({ path: file, fullPage: false });
  return file;
}

module.exports = { launch, newPage, screenshot, ARTIFACTS };
