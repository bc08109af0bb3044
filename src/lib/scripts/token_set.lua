-- token_set: store a customer's API token (hookq token set C TOKEN). A
-- customer held because its token was missing or rejected resumes: the
-- customer leaves `hc`, and every key of it held for reason `no-token` or
-- `token-invalid` becomes ready again with its head job unchanged, the
-- key with the oldest head job first. Keys held for other reasons (an
-- operator's hold, a failure policy) stay held. Needs _prelude.lua.
-- KEYS[1] = shard prefix "{ns:S}:"
-- ARGV: customer, token
-- Reply: {released, reason}: the number of keys made ready, and the reason
-- the customer was held ('' when it was not).
local customer, token = ARGV[1], ARGV[2]
redis.call('HSET', P .. 'tok', customer, token)

local function for_token(why)
  return why == 'token-invalid' or why == 'no-token'
end

local reason = redis.call('HGET', P .. 'hc', customer) or ''
if for_token(reason) then
  redis.call('HDEL', P .. 'hc', customer)
end

local keys = held_newest_first(customer, function(key)
  return for_token(redis.call('HGET', P .. 'm:' .. key, 'why'))
end)
local released = 0
for _, key in ipairs(keys) do
  if reason ~= '' and not for_token(reason) then
    -- The customer is still held for another reason: the key stays held
    -- with it, and resumes when the customer is released.
    hold_key(key, customer, reason, 1)
  else
    unhold_key(key, customer)
    released = released + 1
  end
end
if released > 0 then
  wake()
end
return {released, reason}
