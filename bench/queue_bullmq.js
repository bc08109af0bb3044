// The BullMQ baseline of bench/queue.sh: N no-op jobs over K "keys" (job
// names; BullMQ has no per-key order) added with addBulk, then processed by
// one Worker at concurrency 50. Completed jobs are removed, as hookq removes
// done jobs. Prints the same figures as bench_queue; the last line is JSON.
//   node queue_bullmq.js PORT [JOBS] [KEYS]
'use strict';
const { Queue, Worker } = require('bullmq');
const IORedis = require('ioredis');

const port = Number(process.argv[2]);
const jobs = Number(process.argv[3] || 200000);
const keys = Number(process.argv[4] || 1000);
const connection = { host: '127.0.0.1', port, maxRetriesPerRequest: null };

async function sample(r) {
  const cs = await r.info('commandstats');
  let calls = 0;
  for (const m of cs.matchAll(/calls=(\d+)/g)) calls += Number(m[1]);
  const cpu = await r.info('cpu');
  const sys = Number(/used_cpu_sys:([\d.]+)/.exec(cpu)[1]);
  const user = Number(/used_cpu_user:([\d.]+)/.exec(cpu)[1]);
  return { calls, cpu: sys + user };
}

async function main() {
  const r = new IORedis(connection);
  const queue = new Queue('bench', { connection });
  await queue.waitUntilReady();
  const s0 = await sample(r);
  let t0 = process.hrtime.bigint();
  const chunk = 1000;
  for (let i = 0; i < jobs; i += chunk) {
    const bulk = [];
    for (let j = i; j < Math.min(jobs, i + chunk); j++)
      bulk.push({ name: 'c' + (j % keys) + ':e', data: { n: j, pad: 'xxxxxxxxxxxxxxxx' },
                  opts: { removeOnComplete: true, removeOnFail: true } });
    await queue.addBulk(bulk);
  }
  const enqS = Number(process.hrtime.bigint() - t0) / 1e9;
  const s1 = await sample(r);

  let done = 0;
  const lat = [];
  let resolveAll;
  const all = new Promise((res) => { resolveAll = res; });
  t0 = process.hrtime.bigint();
  const worker = new Worker('bench', async () => {}, { connection, concurrency: 50, autorun: false });
  worker.on('completed', (job) => {
    if (job.processedOn) lat.push(Date.now() - job.processedOn);
    if (++done === jobs) resolveAll();
  });
  worker.run();
  await all;
  const drainS = Number(process.hrtime.bigint() - t0) / 1e9;
  const s2 = await sample(r);
  await worker.close();
  await queue.close();
  lat.sort((a, b) => a - b);
  const p50 = lat[Math.floor(lat.length / 2)] || 0;
  const p99 = lat[Math.floor(lat.length * 0.99)] || 0;
  console.log(`bullmq add:    ${jobs} jobs in ${enqS.toFixed(2)} s = ${(jobs / enqS).toFixed(0)} jobs/s; ` +
              `${((s1.calls - s0.calls - 2) / jobs).toFixed(2)} redis commands/job, ` +
              `${((s1.cpu - s0.cpu) * 1e6 / jobs).toFixed(1)} us redis cpu/job`);
  console.log(`bullmq drain:  ${jobs} jobs in ${drainS.toFixed(2)} s = ${(jobs / drainS).toFixed(0)} jobs/s; ` +
              `${((s2.calls - s1.calls - 2) / jobs).toFixed(2)} redis commands/job, ` +
              `${((s2.cpu - s1.cpu) * 1e6 / jobs).toFixed(1)} us redis cpu/job; ` +
              `processed->completed p50 ${p50} ms, p99 ${p99} ms (ms resolution)`);
  console.log(JSON.stringify({ enqueue_jobs_per_s: jobs / enqS, drain_jobs_per_s: jobs / drainS }));
  await r.quit();
}

main().catch((e) => { console.error(e); process.exit(1); });
