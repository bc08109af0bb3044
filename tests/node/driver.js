#!/usr/bin/env node
/*
 * A headless chromium that a test drives line by line: Debian's chromium,
 * started by puppeteer-core (which downloads no browser), one page.
 * tests/integration/test_dashboard.py runs it, sends one JSON command per
 * line on stdin and reads one JSON answer per line on stdout, and checks
 * Redis between the steps: the page is clicked here, the effect is read
 * there.
 *
 * Usage: driver.js [--token TOKEN]   (CHROMIUM: the browser, default
 *                                      /usr/bin/chromium)
 * Dialogs: a prompt() is answered with TOKEN (cancelled without one), a
 * confirm() accepted; each is recorded. Console errors, page errors
 * (uncaught exceptions) and every answer of 400 or more are recorded too;
 * the `problems` command returns them.
 *
 * Commands ({"op": ...}); every answer is {"ok": true, ...} or
 * {"ok": false, "error": "..."}:
 *   goto {url}                       load a page (waits for it to load)
 *   wait {js, timeout}               until the expression `js` is truthy in
 *                                    the page; answers its value
 *   eval {js}                        the value of `js` in the page
 *   click {selector}                 click the first element matching (its
 *                                    click(); fails when it is disabled)
 *   click_text {within, text, row}   click the button whose text is `text`
 *                                    inside `within`; with `row`, in the
 *                                    table row that has a cell of that text
 *   type {selector, text}            focus, clear and type
 *   select {selector, value}
 *   screenshot {path}                the whole page, PNG
 *   problems                         {console, page_errors, responses, dialogs}
 *   quit
 */
"use strict";
const readline = require("readline");
const puppeteer = require("puppeteer-core");

const args = process.argv.slice(2);
const token = args[0] === "--token" ? args[1] : null;
const found = { console: [], page_errors: [], responses: [], dialogs: [] };

async function main() {
  const browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    // --no-sandbox: CI runs as root, where chromium's sandbox refuses to start.
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--no-first-run", "--no-default-browser-check"],
  });
  try {
    const page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 900 });
    page.on("console", m => { if (m.type() === "error") found.console.push(m.text()); });
    page.on("pageerror", e => found.page_errors.push(String(e && e.message || e)));
    page.on("response", r => {
      if (r.status() >= 400)
        found.responses.push({ url: r.url(), status: r.status(), method: r.request().method() });
    });
    page.on("dialog", async d => {
      found.dialogs.push({ type: d.type(), message: d.message() });
      if (d.type() === "prompt") {
        if (token) await d.accept(token); else await d.dismiss();
      } else {
        await d.accept();
      }
    });
    const rl = readline.createInterface({ input: process.stdin });
    for await (const line of rl) {
      if (!line.trim()) continue;
      let cmd, out;
      try {
        cmd = JSON.parse(line);
        if (cmd.op === "quit") break;
        out = { ok: true, value: await run(page, cmd) };
      } catch (e) {
        out = { ok: false, error: String(e && e.stack || e) };
      }
      process.stdout.write(JSON.stringify(out) + "\n");
    }
    rl.close();
  } finally {
    await browser.close();
  }
}

async function run(page, cmd) {
  const timeout = cmd.timeout ? cmd.timeout * 1000 : 10000;
  switch (cmd.op) {
  case "goto":
    await page.goto(cmd.url, { waitUntil: "load", timeout });
    return null;
  case "wait": {
    const h = await page.waitForFunction(cmd.js, { timeout, polling: 50 });
    return await h.jsonValue();
  }
  case "eval":
    return await page.evaluate(cmd.js);
  case "click":
    // The element's own click(), not a mouse event at its place: the page
    // redraws every 2 s, and a table that grows can move the element
    // between finding it and the mouse landing.
    await page.waitForSelector(cmd.selector, { timeout });
    await page.$eval(cmd.selector, e => {
      if (e.disabled) throw new Error("disabled");
      e.click();
    });
    return null;
  case "click_text": {
    const clicked = await page.evaluate((within, text, row) => {
      const root = document.querySelector(within);
      if (!root) return "no element " + within;
      let scope = [root];
      if (row !== undefined && row !== null) {
        scope = [...root.querySelectorAll("tr")].filter(tr =>
          [...tr.cells].some(td => td.textContent === row));
        if (!scope.length) return "no row " + row + " in " + within;
      }
      const b = scope.flatMap(s => [...s.querySelectorAll("button")])
                     .find(x => x.textContent === text);
      if (!b) return "no button " + text;
      if (b.disabled) return "button " + text + " is disabled";
      b.click();
      return "";
    }, cmd.within, cmd.text, cmd.row);
    if (clicked) throw new Error(clicked);
    return null;
  }
  case "type":
    await page.click(cmd.selector, { clickCount: 3 });
    // Cleared as a person would, so that the page hears it (an "input"
    // event) even when nothing is typed after.
    await page.$eval(cmd.selector, e => {
      e.value = "";
      e.dispatchEvent(new Event("input", { bubbles: true }));
    });
    await page.type(cmd.selector, cmd.text);
    return null;
  case "select":
    await page.select(cmd.selector, cmd.value);
    return null;
  case "screenshot":
    await page.screenshot({ path: cmd.path, fullPage: true });
    return cmd.path;
  case "problems":
    return found;
  default:
    throw new Error("unknown op " + cmd.op);
  }
}

main().then(() => process.exit(0),
            e => { process.stderr.write(String(e && e.stack || e) + "\n"); process.exit(1); });
