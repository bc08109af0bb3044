-- stats: a consistent snapshot of one shard's gauges and counters (hookq
-- stats). Read-only, O(1): every key with jobs is in `depth` and in exactly
-- one of ready, active, parked, held (invariant 1), so the ready keys are
-- the rest. Needs _prelude.lua.
-- KEYS[1] = shard prefix "{ns:S}:"
-- Reply: {ready_customers, ready_keys, active, parked, held, held_customers,
--         dead_letters, jobs, now_ms, {counter, value, ...}}
-- Queued jobs are derived from the counters: every record that enters a
-- list is counted (accepted, dlq_retried) and every one that leaves it too
-- (done, deadlettered), so no gauge has to be written on the hot path.
local c = redis.call('HMGET', P .. 'stats', 'accepted', 'dlq_retried', 'done', 'deadlettered')
local jobs = (tonumber(c[1]) or 0) + (tonumber(c[2]) or 0)
             - (tonumber(c[3]) or 0) - (tonumber(c[4]) or 0)
local keys = redis.call('ZCARD', P .. 'depth')
if keys > 0 and redis.call('ZSCORE', P .. 'depth', LEASE_PIN) then
  keys = keys - 1
end
local active = redis.call('ZCARD', P .. 'leases')
if active > 0 and redis.call('ZSCORE', P .. 'leases', LEASE_PIN) then
  active = active - 1
end
local parked = redis.call('ZCARD', P .. 'parked')
local held = redis.call('HLEN', P .. 'held')
local ready = keys - active - parked - held
if ready < 0 then
  ready = 0
end
return {
  redis.call('LLEN', P .. 'rc'),
  ready,
  active,
  parked,
  held,
  redis.call('HLEN', P .. 'hc'),
  redis.call('LLEN', P .. 'dlq'),
  jobs,
  now_ms(),
  redis.call('HGETALL', P .. 'stats'),
}
