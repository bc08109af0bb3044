-- limit: the API rate limiter (G7), one atomic step per decision.
-- KEYS[1] = P, the customer's shard prefix "{ns:S}:".
--
-- State: P rl:<h>:<endpoint>, a LIST of the times (ms, Redis TIME) of the
-- last R calls granted for that (token, endpoint), oldest first; h is the
-- first 16 hex digits of sha1(token). A call is granted at `now` only if
-- fewer than R calls were granted in the last W + margin ms, that is when
-- the list holds fewer than R times or its oldest is <= now - W - margin.
-- So any R+1 consecutive grants span more than W + margin: strict, with no
-- burst at window boundaries. See docs/queue-semantics.md, "Rate limiter".
--
-- ARGV[1] = "take": ARGV key, fence, customer, endpoint, R, W_ms, margin_ms
--   Checks that the job's lease is still current (m:<key> st = active and
--   tok = fence), reads the customer's token from P tok, and grants or not.
--   {1, now, token}  granted: the call is recorded at now; make it now
--   {0, wait_ms}     no budget: the earliest grant is now + wait_ms
--   {-1}             the lease is no longer ours: do nothing
--   {-2}             the customer has no token
--
-- ARGV[1] = "block": ARGV token, endpoint, delay_ms, R, W_ms, margin_ms
--   The API answered 429: no grant for that (token, endpoint) before
--   now + delay_ms. Every recorded time is raised to at least
--   now + delay_ms - W - margin (R of them), which keeps the list sorted
--   and makes the first grant due at now + delay_ms. {1, until_ms}
-- (P, now_ms and stat come from _prelude.lua.)
local now = now_ms()

if ARGV[1] == 'take' then
  local key, fence, customer, endpoint = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
  local R = tonumber(ARGV[6])
  local span = tonumber(ARGV[7]) + tonumber(ARGV[8])
  local m = redis.call('HMGET', P .. 'm:' .. key, 'st', 'tok')
  if m[1] ~= 'active' or m[2] ~= fence then
    return {-1}
  end
  local token = redis.call('HGET', P .. 'tok', customer)
  if not token or token == '' then
    return {-2}
  end
  local rl = P .. 'rl:' .. string.sub(redis.sha1hex(token), 1, 16) .. ':' ..
             endpoint
  local n = redis.call('LLEN', rl)
  if n >= R then
    local due = tonumber(redis.call('LINDEX', rl, -R)) + span
    if due > now then
      stat('api_waits')
      return {0, due - now}
    end
  end
  redis.call('RPUSH', rl, now)
  if n + 1 > R then
    redis.call('LTRIM', rl, -R, -1)
  end
  redis.call('PEXPIRE', rl, span + 1)
  stat('api_calls')
  return {1, now, token}
elseif ARGV[1] == 'block' then
  local token, endpoint = ARGV[2], ARGV[3]
  local delay, R = tonumber(ARGV[4]), tonumber(ARGV[5])
  local span = tonumber(ARGV[6]) + tonumber(ARGV[7])
  local rl = P .. 'rl:' .. string.sub(redis.sha1hex(token), 1, 16) .. ':' ..
             endpoint
  local floor = now + delay - span
  local times = redis.call('LRANGE', rl, -R, -1)
  local raised = {}
  for i = 1, R - #times do
    raised[#raised + 1] = floor
  end
  for i = 1, #times do
    local v = tonumber(times[i])
    if v < floor then v = floor end
    raised[#raised + 1] = v
  end
  redis.call('DEL', rl)
  redis.call('RPUSH', rl, unpack(raised))
  local newest = raised[#raised]
  if newest < now then newest = now end
  redis.call('PEXPIRE', rl, newest - now + span + 1)
  stat('api_429')
  return {1, tonumber(raised[#raised - R + 1]) + span}
end
return redis.error_reply('limit: unknown op ' .. tostring(ARGV[1]))
