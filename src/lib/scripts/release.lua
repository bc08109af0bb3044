-- release: an operator releases a held key (hookq release KEY): it becomes
-- ready at the front of its customer's keys, its head job unchanged, so it
-- runs next and in order, with a fresh count of attempts (m.a cleared; the
-- last error stays for the operator to read). Needs _prelude.lua.
-- KEYS[1] = shard prefix "{ns:S}:"
-- ARGV: key
-- Reply: {status, detail}
--   0 ''      the key is idle: nothing queued
--   1 reason  released (reason = why it was held)
--   2 ''      active with a pending hold (m.ha): the pending hold is cancelled
--   3 state   not held (state = ready, parked or active)
local key = ARGV[1]
local m = P .. 'm:' .. key
local meta = redis.call('HMGET', m, 'st', 'c', 'why')
local st, customer = meta[1], meta[2]
if not st then
  return {0, ''}
end
if st == 'active' and redis.call('HDEL', m, 'ha') == 1 then
  return {2, ''}
end
if st ~= 'held' then
  return {3, st}
end
unhold_key(key, customer)
redis.call('HDEL', m, 'a')
wake()
return {1, meta[3] or ''}
