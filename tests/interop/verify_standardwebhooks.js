// verify_standardwebhooks: check deliveries with the reference verifier,
// the npm `standardwebhooks` package (tests/interop/package.json).
// Usage: node verify_standardwebhooks.js FILE
// FILE: JSON {"secret": "whsec_...", "deliveries": [{"raw": body, "headers":
// {"webhook-id", "webhook-timestamp", "webhook-signature"}}, ...]}.
// Prints one JSON line per delivery, {"ok": true, "id": ...} or {"ok": false,
// "error": ...}; exits 1 when any failed.
"use strict";
const fs = require("fs");
const { Webhook } = require("standardwebhooks");

const input = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const wh = new Webhook(input.secret);
let failed = 0;
for (const d of input.deliveries) {
  try {
    const payload = wh.verify(d.raw, d.headers);
    console.log(JSON.stringify({ ok: true, id: payload.id }));
  } catch (e) {
    failed++;
    console.log(JSON.stringify({ ok: false, error: String(e.message || e) }));
  }
}
process.exit(failed ? 1 : 0);
