// dashboard_check.js: runs the admin dashboard's own script (GET / of a live
// admin listener) under node, against that listener's real API, with just
// enough of a DOM for it, and prints what the page shows as JSON: the status
// line, the cards, and every table's rows as cell texts.
//
//   node dashboard_check.js BASE_URL [--token T] [--click TABLE LABEL ROW_TEXT]
//
// --token T answers the page's prompt() for the admin token. --click presses
// the button LABEL in the row of table TABLE whose first cell is ROW_TEXT
// (or the "Retry all" button when TABLE is "retry-all"), waits for the API
// call and the refresh that follows, then prints the page as it is after.
// Used by test_admin_http.py; needs node 18 (global fetch).
"use strict";
const vm = require("vm");

const args = process.argv.slice(2);
const base = args[0];
let token = null, click = null;
for (let i = 1; i < args.length; i++) {
  if (args[i] === "--token") token = args[++i];
  else if (args[i] === "--click") { click = args.slice(i + 1, i + 4); i += 3; }
}

class Node {}
class Element extends Node {
  constructor(tag, id) {
    super();
    this.tag = tag; this.id = id || ""; this.children = []; this.own = "";
    this.className = ""; this.disabled = false; this.onclick = null;
  }
  set textContent(v) { this.own = String(v); this.children = []; }
  get textContent() { return this.own + this.children.map(c => c.textContent).join(""); }
  append(...nodes) { this.children.push(...nodes); }
  replaceChildren(...nodes) { this.children = nodes; this.own = ""; }
}

async function main() {
  const page = await (await fetch(base + "/")).text();
  const script = /<script>([\s\S]*)<\/script>/.exec(page)[1];
  const byId = {};
  for (const m of page.matchAll(/<(\w+)[^>]* id="([^"]+)"/g)) byId[m[2]] = new Element(m[1], m[2]);
  const storage = {};
  const prompts = [], alerts = [];
  const ctx = {
    Node, JSON, Promise, Object, Date, String, Error,
    document: {
      getElementById: id => byId[id],
      createElement: tag => new Element(tag),
    },
    sessionStorage: {
      getItem: k => (k in storage ? storage[k] : null),
      setItem: (k, v) => { storage[k] = String(v); },
    },
    prompt: msg => { prompts.push(msg); return token; },
    alert: msg => { alerts.push(String(msg)); },
    confirm: () => true,
    setInterval: () => 0,
    fetch: (path, opts) => fetch(base + path, opts),
  };
  vm.createContext(ctx);
  vm.runInContext(script, ctx);
  await ctx.refresh();

  if (click) {
    const [table, label, rowText] = click;
    let button = null;
    if (table === "retry-all") {
      button = byId["retry-all"];
    } else {
      for (const tr of byId[table].children.filter(c => c.tag === "tr")) {
        if (tr.children[0].textContent !== rowText) continue;
        for (const td of tr.children)
          for (const c of td.children)
            if (c.tag === "button" && c.textContent === label) button = c;
      }
    }
    if (!button) throw new Error("no button " + label + " for " + rowText + " in " + table);
    await button.onclick();
  }

  const tables = {};
  for (const [id, e] of Object.entries(byId)) {
    if (e.tag !== "table") continue;
    tables[id] = e.children.filter(c => c.tag === "tr").map(tr => tr.children.map(td => td.textContent));
  }
  const cards = id => byId[id].children.map(c => [c.children[1].textContent, c.children[0].textContent]);
  console.log(JSON.stringify({
    status: byId.status.textContent, status_bad: byId.status.className === "bad",
    totals: Object.fromEntries(cards("totals")), rates: Object.fromEntries(cards("rates")),
    tables, retry_all_disabled: byId["retry-all"].disabled, prompts, alerts,
  }));
}

main().catch(e => { console.error("dashboard_check: " + e.stack); process.exit(1); });
