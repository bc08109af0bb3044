// The peer of hookq's intake in bench/intake.sh: what a team would write
// instead of it with Node and BullMQ (issue 10). node:cluster with one
// process per core, node:http, JSON.parse, the same checks as hookq's intake
// (code, data, customer at data.customer_id, a known code), then
// `await queue.add(code, body, { jobId: webhook-id })` and 202 once the add
// has returned; 503 when Redis fails the add. BullMQ as pinned in
// bench/package.json (installed into bench/.node by bench/intake.sh).
//   node intake_bullmq.js HTTP_PORT REDIS_PORT
'use strict';
const cluster = require('node:cluster');
const http = require('node:http');
const os = require('node:os');

const httpPort = Number(process.argv[2]);
const redisPort = Number(process.argv[3]);
const CODES = new Set(['post-create']);
const MAX_BODY = 1 << 20;

function answer(res, status, obj) {
  const body = JSON.stringify(obj);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

function serve() {
  const { Queue } = require('bullmq');
  const queue = new Queue('webhooks', {
    connection: { host: '127.0.0.1', port: redisPort, maxRetriesPerRequest: 1 },
  });
  http.createServer((req, res) => {
    if (req.url !== '/webhook') return answer(res, 404, { error: 'not_found' });
    if (req.method !== 'POST') {
      res.setHeader('Allow', 'POST');
      return answer(res, 405, { error: 'method_not_allowed' });
    }
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > MAX_BODY) {
        answer(res, 413, { error: 'body_too_large' });
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', async () => {
      if (size > MAX_BODY) return;
      let body;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch (e) {
        return answer(res, 400, { error: 'invalid_json', detail: e.message });
      }
      if (body === null || typeof body !== 'object' || Array.isArray(body))
        return answer(res, 400, { error: 'invalid_json', detail: 'not an object' });
      const code = body.code;
      if (typeof code !== 'string' || code === '') return answer(res, 400, { error: 'missing_code' });
      if (!('data' in body)) return answer(res, 400, { error: 'missing_data' });
      const data = body.data;
      const customer = data !== null && typeof data === 'object' ? data.customer_id : undefined;
      if (!((typeof customer === 'string' && customer !== '') || Number.isInteger(customer)))
        return answer(res, 400, { error: 'missing_customer' });
      if (!CODES.has(code)) return answer(res, 422, { error: 'unknown_code', detail: code });
      const whid = req.headers['webhook-id'];
      try {
        const job = await queue.add(code, body, whid ? { jobId: whid } : undefined);
        answer(res, 202, { id: job.id });
      } catch (e) {
        res.setHeader('Retry-After', '1');
        answer(res, 503, { error: 'redis_unavailable', detail: String(e.message) });
      }
    });
  }).listen(httpPort, '127.0.0.1');
}

if (cluster.isPrimary) {
  const n = os.availableParallelism ? os.availableParallelism() : os.cpus().length;
  for (let i = 0; i < n; i++) cluster.fork();
  let stopping = false;
  cluster.on('exit', (w, codeOrSignal) => {
    if (!stopping) console.error(`intake_bullmq: worker ${w.process.pid} exited (${codeOrSignal})`);
  });
  const stop = () => {
    stopping = true;
    for (const id in cluster.workers) cluster.workers[id].process.kill('SIGTERM');
    setTimeout(() => process.exit(0), 200);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
} else {
  serve();
}
