-- stats: a consistent snapshot of one shard's gauges and counters (hookq
-- stats). Read-only, O(1): every key with jobs is in `depth` and in exactly
-- one of ready, active, parked, held (invariant 1), so the ready keys are
-- the rest. Needs _prelude.lua.
-- KEYS[1] = shard prefix "{ns:S}:"
-- Reply: {ready_customers, ready_keys, active, parked, held, held_customers,
--         dead_letters, jobs, now_ms, {counter, value, ...}, oldest_ms}
-- oldest_ms is the age of the oldest waiting head job (-1: none waits), the
-- figure that grows when no worker takes anything: the head jobs of the
-- first ready key of each of the first OLDEST_SCAN customers of the ring
-- (those longest without a turn) and of up to OLDEST_SCAN parked keys
-- already due. Exact while a shard has at most OLDEST_SCAN ready customers;
-- bounded either way.
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
local OLDEST_SCAN = 100
local now = now_ms()
local oldest = -1
local function head_age(key)
  local rec = key and redis.call('LINDEX', P .. 'q:' .. key, 0)
  local at = rec and tonumber(string.match(rec, '^[^\n]*\n[^\n]*\n(%d+)\n'))
  if at and now - at > oldest then
    oldest = math.max(0, now - at)
  end
end
for _, c in ipairs(redis.call('LRANGE', P .. 'rc', 0, OLDEST_SCAN - 1)) do
  head_age(redis.call('LINDEX', P .. 'rk:' .. c, 0))
end
for _, k in ipairs(redis.call('ZRANGEBYSCORE', P .. 'parked', '-inf', now, 'LIMIT', 0, OLDEST_SCAN)) do
  head_age(k)
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
  now,
  redis.call('HGETALL', P .. 'stats'),
  oldest,
}
