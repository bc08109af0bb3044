#!/usr/bin/env node
/*
 * docs/admin-api.yaml against a live admin listener, for
 * tests/integration/test_openapi.py: validates the document (npm
 * @apidevtools/swagger-parser: OpenAPI 3.0 schema and $refs), then makes
 * each request it is given and checks the answer against the operation the
 * document has for it: the status must be one the operation lists, and a
 * JSON body must match that status's schema (ajv). Prints one JSON object:
 *   {"results": [{method, path, status, body, errors: [...]}],
 *    "untested": ["GET /api/x", ...]}   operations no request reached
 * Usage: openapi_check.js SPEC BASE_URL [TOKEN] < requests.json
 *   requests.json: [{"method": "GET", "path": "/api/keys?top=1",
 *                    "body": {...} (optional), "auth": false (optional)}]
 * Exit status 0 when it could run (the caller judges the results), 1 when
 * the document is invalid or the server cannot be reached.
 */
"use strict";
const fs = require("fs");
const SwaggerParser = require("@apidevtools/swagger-parser");
const Ajv = require("ajv");

async function main() {
  const [specPath, base, token] = process.argv.slice(2);
  const requests = JSON.parse(fs.readFileSync(0, "utf8"));
  await SwaggerParser.validate(specPath);                 // throws on any finding
  const spec = await SwaggerParser.dereference(specPath);
  if (!/^3\.0\./.test(spec.openapi)) throw new Error("not OpenAPI 3.0: " + spec.openapi);
  // OpenAPI 3.0 schemas: `nullable`, `example` and formats are not JSON
  // Schema's; ajv reads nullable itself and is told to pass the others.
  const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false });

  // Templates as regexes; an exact path wins over a template (/api/dlq/retry).
  const routes = Object.keys(spec.paths).map(p => ({
    path: p,
    exact: !p.includes("{"),
    re: new RegExp("^" + p.replace(/[.*+?^$()|[\]\\]/g, "\\$&").replace(/\{[^}]+\}/g, "[^/]+") + "$"),
  })).sort((a, b) => b.exact - a.exact);
  const reached = new Set();
  const results = [];

  for (const r of requests) {
    const url = new URL(r.path, base);
    const headers = {};
    if (token && r.auth !== false) headers["Authorization"] = "Bearer " + token;
    const opts = { method: r.method, headers };
    if (r.body !== undefined) {
      headers["Content-Type"] = r.contentType || "application/json";
      opts.body = typeof r.body === "string" ? r.body : JSON.stringify(r.body);
    }
    const res = await fetch(url, opts);
    const text = await res.text();
    const out = { method: r.method, path: r.path, status: res.status, body: text, errors: [] };
    results.push(out);
    const route = routes.find(x => x.re.test(url.pathname));
    const op = route && spec.paths[route.path][r.method.toLowerCase()];
    if (!op) { out.errors.push("no operation in the document for " + r.method + " " + url.pathname); continue; }
    reached.add(r.method + " " + route.path);
    const answer = op.responses[String(res.status)] || op.responses.default;
    if (!answer) { out.errors.push("status " + res.status + " is not documented"); continue; }
    const media = answer.content && answer.content["application/json"];
    if (!media) {
      if (text !== "") out.errors.push("a body where the document has none: " + text.slice(0, 200));
      continue;
    }
    const type = res.headers.get("content-type") || "";
    if (!type.startsWith("application/json")) out.errors.push("Content-Type " + type);
    let doc;
    try { doc = JSON.parse(text); } catch (e) { out.errors.push("not JSON: " + text.slice(0, 200)); continue; }
    const validate = ajv.compile(media.schema);
    if (!validate(doc))
      for (const e of validate.errors) out.errors.push("body" + e.instancePath + " " + e.message +
                                                       (e.params ? " " + JSON.stringify(e.params) : ""));
    for (const [name] of Object.entries(answer.headers || {}))
      if (!res.headers.has(name)) out.errors.push("no " + name + " header");
  }
  const untested = [];
  for (const [p, item] of Object.entries(spec.paths))
    for (const m of ["get", "put", "post", "delete", "patch"])
      if (item[m] && !reached.has(m.toUpperCase() + " " + p)) untested.push(m.toUpperCase() + " " + p);
  process.stdout.write(JSON.stringify({ results, untested }) + "\n");
}

main().catch(e => { process.stderr.write(String(e && e.stack || e) + "\n"); process.exit(1); });
