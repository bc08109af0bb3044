-- dlq_list: a page of the shard's dead letters, oldest first (hookq dlq
-- list). Read-only. Needs _prelude.lua.
-- KEYS[1] = shard prefix "{ns:S}:"
-- ARGV: start, count
-- Reply: {total, then 7 per dead letter: id, key, seq, attempts, at_ms,
--         received_at_ms, error}
local start, count = tonumber(ARGV[1]), tonumber(ARGV[2])
local out = {redis.call('LLEN', P .. 'dlq')}
for _, id in ipairs(redis.call('LRANGE', P .. 'dlq', start, start + count - 1)) do
  local f = redis.call('HMGET', P .. 'dl:' .. id, 'key', 'record', 'attempts', 'at', 'error')
  local seq, recv = string.match(f[2] or '', '^[^\n]*\n([^\n]*)\n([^\n]*)')
  local n = #out
  out[n + 1] = id
  out[n + 2] = f[1] or ''
  out[n + 3] = tonumber(seq or '0') or 0
  out[n + 4] = tonumber(f[3] or '0') or 0
  out[n + 5] = tonumber(f[4] or '0') or 0
  out[n + 6] = tonumber(recv or '0') or 0
  out[n + 7] = f[5] or ''
end
return out
