-- hold: an operator holds a key (hookq hold KEY): it is claimed by no worker
-- until released. Needs _prelude.lua.
-- KEYS[1] = shard prefix "{ns:S}:"
-- ARGV: key, reason
-- Reply: {status, detail}
--   0 ''      the key is idle: nothing queued, nothing to hold
--   1 state   held now (state = where it was: ready, parked, or held with
--             its customer, which makes the hold the key's own)
--   2 reason  it was held already, by its own hold (reason unchanged)
--   3 ''      active: marked (m.ha), so the settle of its running job
--             leaves it held instead of ready or parked
local key, reason = ARGV[1], ARGV[2]
local m = P .. 'm:' .. key
local meta = redis.call('HMGET', m, 'st', 'c', 'cw', 'why')
local st, customer = meta[1], meta[2]
if not st then
  return {0, ''}
end
if st == 'active' then
  redis.call('HSET', m, 'ha', reason)
  return {3, ''}
end
if st == 'held' then
  if meta[3] ~= '1' then
    return {2, meta[4] or ''}
  end
  -- Held with its customer: the operator's hold outlives the customer's,
  -- so releasing the customer (or setting its token) leaves this key held.
  hold_key(key, customer, reason, 0)
  return {1, 'held'}
end
if st == 'ready' then
  local rk = P .. 'rk:' .. customer
  redis.call('LREM', rk, 1, key)
  if redis.call('LLEN', rk) == 0 then
    redis.call('LREM', P .. 'rc', 0, customer)
  end
elseif st == 'parked' then
  redis.call('ZREM', P .. 'parked', key)
end
hold_key(key, customer, reason, 0)
stat('held')
return {1, st}
