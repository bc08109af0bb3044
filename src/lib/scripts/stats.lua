-- stats: a consistent snapshot of one shard's gauges and counters (hookq
-- stats). Read-only. Cost: O(ready customers) for the ready-key count,
-- O(1) for the rest. Needs _prelude.lua.
-- KEYS[1] = shard prefix "{ns:S}:"
-- Reply: {ready_customers, ready_keys, active, parked, held, held_customers,
--         dead_letters, jobs, now_ms, {counter, value, ...}}
local rc = redis.call('LRANGE', P .. 'rc', 0, -1)
local ready = 0
for _, c in ipairs(rc) do
  ready = ready + redis.call('LLEN', P .. 'rk:' .. c)
end
return {
  #rc,
  ready,
  redis.call('ZCARD', P .. 'leases'),
  redis.call('ZCARD', P .. 'parked'),
  redis.call('HLEN', P .. 'held'),
  redis.call('HLEN', P .. 'hc'),
  redis.call('LLEN', P .. 'dlq'),
  tonumber(redis.call('GET', P .. 'jobs') or '0'),
  now_ms(),
  redis.call('HGETALL', P .. 'stats'),
}
