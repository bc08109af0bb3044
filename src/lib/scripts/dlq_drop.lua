-- dlq_drop: dead letters are deleted for good (hookq dlq drop).
-- KEYS[1] = shard prefix "{ns:S}:"
-- ARGV: id...
-- Reply: flat {id, key, ...} of the dead letters dropped.
local out = {}
for i = 1, #ARGV do
  local id = ARGV[i]
  local dl = P .. 'dl:' .. id
  local key = redis.call('HGET', dl, 'key')
  local n = redis.call('LREM', P .. 'dlq', 1, id)
  if key or n > 0 then
    redis.call('DEL', dl)
    stat('dlq_dropped')
    out[#out + 1] = id
    out[#out + 1] = key or ''
  end
end
return out
