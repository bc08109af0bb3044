-- release_customer: an operator releases a held customer (hookq release
-- --customer C): the customer leaves `hc`, and every key held with it
-- (m.cw = 1) or for its token (reason no-token or token-invalid, which hold
-- only the key) becomes ready again, each with its head job unchanged. Keys
-- held on their own (an operator's hold, a failure policy) stay held.
-- Needs _prelude.lua.
-- KEYS[1] = shard prefix "{ns:S}:"
-- ARGV: customer
-- Reply: {released, reason}: the number of keys made ready, and the reason
-- the customer was held ('' when it was not).
local customer = ARGV[1]
local reason = redis.call('HGET', P .. 'hc', customer) or ''
redis.call('HDEL', P .. 'hc', customer)

-- Released keys go to the front of the customer's ready keys, newest head
-- job first, so the customer's oldest waiting job runs first.
local keys = held_newest_first(customer, function(key)
  local m = redis.call('HMGET', P .. 'm:' .. key, 'cw', 'why')
  return m[1] == '1' or m[2] == 'no-token' or m[2] == 'token-invalid'
end)
for _, key in ipairs(keys) do
  unhold_key(key, customer)
end
if #keys > 0 then
  wake()
end
return {#keys, reason}
