-- peek: a key's state and its first n job records (hookq peek). Read-only.
-- Needs _prelude.lua.
-- KEYS[1] = shard prefix "{ns:S}:"
-- ARGV: key, n
-- Reply: {state ('' = idle), depth, attempts, when_ms (-1 = none), reason,
--         pending hold, last error, {record, ...}}
local key, n = ARGV[1], tonumber(ARGV[2])
local meta = redis.call('HMGET', P .. 'm:' .. key, 'st', 'a', 'why', 'ha', 'err')
local st = meta[1] or ''
local when = -1
if st == 'active' then
  when = tonumber(redis.call('ZSCORE', P .. 'leases', key) or '-1')
elseif st == 'parked' then
  when = tonumber(redis.call('ZSCORE', P .. 'parked', key) or '-1')
end
local recs = {}
if n > 0 then
  recs = redis.call('LRANGE', P .. 'q:' .. key, 0, n - 1)
end
return {st, redis.call('LLEN', P .. 'q:' .. key), tonumber(meta[2] or '0'), when,
        meta[3] or '', meta[4] or '', meta[5] or '', recs}
