-- dlq_retry: dead letters go back to their keys (hookq dlq retry). Each
-- record, unchanged (same id and seq, attempts reset), is appended at the
-- TAIL of its key, so it runs after the jobs the key received since; an idle
-- key is scheduled as by enqueue (ready, or held when its customer is). The
-- key's max_key_depth is not checked: the operator decides.
-- Needs _prelude.lua.
-- KEYS[1] = shard prefix "{ns:S}:"
-- ARGV: id... (oldest first, so records of one key keep their order)
-- Reply: flat {id, key, ...} of the dead letters retried; an id that is no
-- dead letter is left out (and removed from the list if it was in it).
local out = {}
local woke = false
for i = 1, #ARGV do
  local id = ARGV[i]
  local dl = P .. 'dl:' .. id
  local f = redis.call('HMGET', dl, 'key', 'customer', 'record')
  redis.call('LREM', P .. 'dlq', 1, id)
  local key, customer, rec = f[1], f[2], f[3]
  if key and rec then
    redis.call('DEL', dl)
    if not customer then
      customer = string.match(key, '^(.*):[^:]*$')
    end
    if redis.call('RPUSH', P .. 'q:' .. key, rec) == 1 then
      pin_indexes()
      redis.call('HSET', P .. 'm:' .. key, 'c', customer)
      if schedule(key, customer, false) == 'ready' then
        woke = true
      end
    end
    redis.call('ZINCRBY', P .. 'depth', 1, key)
    stat('dlq_retried')
    out[#out + 1] = id
    out[#out + 1] = key
  end
end
if woke then
  wake()
end
return out
