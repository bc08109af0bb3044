-- dlq_show: one dead letter (hookq dlq show). Read-only.
-- KEYS[1] = shard prefix "{ns:S}:"
-- ARGV: id
-- Reply: {key, customer, record, error, attempts, at_ms}, or an empty list
-- when there is no such dead letter.
local f = redis.call('HMGET', P .. 'dl:' .. ARGV[1], 'key', 'customer', 'record',
                     'error', 'attempts', 'at')
if not f[1] or not f[3] then
  return {}
end
return {f[1], f[2] or '', f[3], f[4] or '', tonumber(f[5] or '0') or 0,
        tonumber(f[6] or '0') or 0}
