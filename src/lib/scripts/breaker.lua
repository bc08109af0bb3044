-- breaker: the circuit breaker of a target (DESIGN §3.4 step 3): an http
-- delivery's scheme://host:port, an exec program, or api.base_url for
-- fetches. A target that fails `threshold` times in a row is down for every
-- worker; while down, one job at a time probes it at the probe backoff and
-- the first success brings it up. Needs _prelude.lua (now_ms).
-- KEYS[1] = prefix of shard 0, "{ns:0}:": every target's state is in that
-- one slot (a job's own key is settled by its own shard's script).
--   P brs          SET: every target seen (for stats)
--   P br:<target>  HASH: f consecutive failures; down = since (ms), absent
--                  while up; due = next probe not before (ms); pe = the probe
--                  in flight's lease expiry (ms), pid its holder; np failed
--                  probes since down; err the last failure; at last change
-- ARGV[1] = op, ARGV[2] = target, ARGV[3] = the caller's id (job id/fence),
-- then per op:
--   check lease_ms        may a job try the target now?
--     {1, f}              up: go (f = consecutive failures so far)
--     {2, f}              down, and this job is the probe: go
--     {0, wait_ms}        down: park for wait_ms, no attempt counted
--   peek                  what is its state? (a loop's view of it, in the
--                         background: takes no probe, writes nothing)
--     {1, f}              up (f = consecutive failures so far)
--     {0, wait_ms}        down
--   ok                    the target answered
--     {changed, down_ms, np}  changed = 1: it was down and is up now
--   fail threshold probe_min probe_max error
--     {1, changed, f}     up: an attempt as usual; changed = 1: this failure
--                         marked it down
--     {0, wait_ms, np}    down already (a failed probe, or an attempt that
--                         started before it went down): no attempt counted,
--                         park for wait_ms
local op, target, id = ARGV[1], ARGV[2], ARGV[3]
local h = P .. 'br:' .. target
local now = now_ms()
local s = redis.call('HMGET', h, 'f', 'down', 'due', 'pe', 'pid', 'np')
local f, down = tonumber(s[1] or '0'), s[2]
local due, pe, pid = tonumber(s[3] or '0'), tonumber(s[4] or '0'), s[5]
local np = tonumber(s[6] or '0')
local function fmt(n)
  return string.format('%d', n)
end

if op == 'check' then
  if not s[1] and not down then
    redis.call('SADD', P .. 'brs', target)
    return {1, 0}
  end
  if not down then
    return {1, f}
  end
  if now >= due and (pe == 0 or now >= pe) then
    redis.call('HSET', h, 'pe', fmt(now + tonumber(ARGV[4])), 'pid', id)
    return {2, f}
  end
  local wait
  if pe > now then
    -- A probe is in flight: look again soon, so that its success lets the
    -- parked keys go on without waiting a whole probe interval.
    wait = math.min(pe - now, 1000)
  else
    wait = due - now
  end
  return {0, math.max(wait, 10)}
end

if op == 'peek' then
  if not down then
    return {1, f}
  end
  return {0, math.max(due - now, 10)}
end

if op == 'ok' then
  redis.call('SADD', P .. 'brs', target)
  if not down then
    if f ~= 0 then
      redis.call('HSET', h, 'f', '0', 'at', fmt(now))
    end
    return {0, 0, 0}
  end
  redis.call('HDEL', h, 'down', 'due', 'pe', 'pid', 'np')
  redis.call('HSET', h, 'f', '0', 'at', fmt(now))
  return {1, now - tonumber(down), np}
end

if op == 'fail' then
  local threshold = tonumber(ARGV[4])
  local pmin, pmax = tonumber(ARGV[5]), tonumber(ARGV[6])
  redis.call('SADD', P .. 'brs', target)
  if not down then
    f = f + 1
    if f >= threshold then
      redis.call('HSET', h, 'f', fmt(f), 'down', fmt(now),
                 'due', fmt(now + pmin), 'np', '0', 'err', ARGV[7],
                 'at', fmt(now))
      redis.call('HDEL', h, 'pe', 'pid')
      return {1, 1, f}
    end
    redis.call('HSET', h, 'f', fmt(f), 'err', ARGV[7])
    return {1, 0, f}
  end
  if pid == id then
    -- The probe failed: the next one after a longer wait.
    np = np + 1
    local wait = pmin
    for _ = 1, np do
      if wait >= pmax then
        break
      end
      wait = wait * 2
    end
    wait = math.min(wait, pmax)
    due = now + wait
    redis.call('HSET', h, 'np', fmt(np), 'due', fmt(due), 'err', ARGV[7])
    redis.call('HDEL', h, 'pe', 'pid')
  end
  return {0, math.max(due - now, 10), np}
end

if op == 'list' then
  -- Every target: target, f, down (-1 = up), due, np, err, now.
  local out = {}
  for _, t in ipairs(redis.call('SMEMBERS', P .. 'brs')) do
    local v = redis.call('HMGET', P .. 'br:' .. t, 'f', 'down', 'due', 'np', 'err')
    out[#out + 1] = t
    out[#out + 1] = tonumber(v[1] or '0')
    out[#out + 1] = tonumber(v[2] or '-1')
    out[#out + 1] = tonumber(v[3] or '0')
    out[#out + 1] = tonumber(v[4] or '0')
    out[#out + 1] = v[5] or ''
  end
  return {now, out}
end

return redis.error_reply('breaker: unknown op ' .. tostring(op))
