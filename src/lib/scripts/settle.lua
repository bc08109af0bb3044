-- settle: the worker's one call per loop turn. Applies a batch of
-- settlements of leased keys, then promotes due parked keys, reaps expired
-- leases, and claims up to claim_n ready keys round-robin (G3).
-- KEYS[1] = shard prefix "{ns:S}:"
-- ARGV: lease_ms, claim_n, nops, then 6 per op: type, key, token, n, reason,
--   error; or 3 for a done in its short form: d, key, token
--   done     pop the head; the key goes on (tail) or idles
--   retry    one attempt counted, error kept; parked until now + n ms
--   park     parked until now + n ms, no attempt counted
--   dead     the head becomes dead letter (error, n attempts); then as done
--   hold     held with reason; n = 1 holds the whole customer. A hold for
--            the customer's token (no-token, token-invalid) that a token
--            set overtook runs the key again instead
--   renew    lease extended to now + lease_ms
--   release  lease handed back: ready at the front, no attempt counted
-- An op whose token is not the key's current lease changes nothing (G6).
-- Reply: {op_results (1 applied, 0 stale), claimed (flat: key, customer,
--         token, attempt, record), now_ms, next_due_ms (-1 = none)}
local lease_ms, claim_n, nops = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local now = now_ms()
local LEASES, DEPTH, RC = P .. 'leases', P .. 'depth', P .. 'rc'
-- A number passed to redis.call is formatted as a float each time (%.14g,
-- which costs more than most commands): arguments are passed as strings,
-- and the lease expiry is formatted once.
local expiry = string.format('%d', now + lease_ms)
local woke = false
-- Counters are added up here and written once per call.
local counts = {}
local function count(name)
  counts[name] = (counts[name] or 0) + 1
end
no_held_customers = redis.call('HLEN', P .. 'hc') == 0
-- Customers joining the ring's tail are appended with one RPUSH (flush_rc),
-- keys whose lease ends with one ZREM and renewed leases with one ZADD
-- (flush_leases): both before anything else reads the ring or the leases.
rc_tail = {}
local lease_end, lease_renew = {}, {}
local leases_ended = false
local function flush_leases()
  if #lease_end > 0 then
    redis.call('ZREM', LEASES, unpack(lease_end))
    lease_end = {}
    leases_ended = true
  end
  if #lease_renew > 0 then
    redis.call('ZADD', LEASES, unpack(lease_renew))
    lease_renew = {}
  end
end

-- An operator's hold asked for while the job ran (m.ha) wins over a park:
-- the key is held now rather than when it is next due.
local function park_or_hold(key, customer, due)
  local ha = redis.call('HGET', P .. 'm:' .. key, 'ha')
  if ha then
    hold_key(key, customer, ha, 0)
  else
    park_key(key, due)
  end
end

local function hold_customer(customer, reason)
  no_held_customers = false
  redis.call('HSET', P .. 'hc', customer, reason)
  local rk = P .. 'rk:' .. customer
  local keys = redis.call('LRANGE', rk, '0', '-1')
  if #keys > 0 then
    for _, k in ipairs(keys) do
      hold_key(k, customer, reason, 1)
    end
    redis.call('DEL', rk)
    redis.call('LREM', P .. 'rc', '0', customer)
  end
  -- Its parked and active keys are held when they are next scheduled.
end

-- A hold (of the key or of the customer) for reason `no-token` is void once
-- the customer has a token; one for `token-invalid`, once its token is not the one the API
-- rejected (P tokbad: customer -> sha1(token) first 16 hex, written by
-- limit.lua "rejected" before the worker asks for the hold).
local function token_replaced(customer, reason)
  if reason ~= 'no-token' and reason ~= 'token-invalid' then
    return false
  end
  local cur = redis.call('HGET', P .. 'tok', customer)
  if not cur or cur == '' then
    return false
  end
  if reason == 'no-token' then
    return true
  end
  local bad = redis.call('HGET', P .. 'tokbad', customer)
  return not bad or string.sub(redis.sha1hex(cur), 1, 16) ~= bad
end

local results = {}
local i = 4
for n = 1, nops do
  local typ, key, tok = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local num, reason, err
  if typ == 'd' then
    typ = 'done'
    i = i + 3
  else
    num, reason, err = tonumber(ARGV[i + 3]), ARGV[i + 4], ARGV[i + 5]
    i = i + 6
  end
  local m = P .. 'm:' .. key
  local meta = redis.call('HMGET', m, 'st', 'tok', 'c', 'ha', 'a', 'err')
  local customer = meta[3]
  if typ ~= 'done' and typ ~= 'renew' then
    -- hold_customer reads the ring: bring it up to date first.
    flush_rc()
  end
  if meta[1] ~= 'active' or meta[2] ~= tok then
    results[n] = 0
    count('stale')
  elseif typ == 'renew' then
    results[n] = 1
    lease_renew[#lease_renew + 1] = expiry
    lease_renew[#lease_renew + 1] = key
  else
    results[n] = 1
    lease_end[#lease_end + 1] = key
    -- m.tok stays until the next claim overwrites it: with st no longer
    -- 'active', it matches nothing.
    if typ == 'done' or typ == 'dead' then
      local q = P .. 'q:' .. key
      -- done drops the head without copying it out (bodies can be large).
      local rec = true
      if typ == 'dead' then
        rec = redis.call('LPOP', q)
      else
        redis.call('LTRIM', q, '1', '-1')
      end
      if typ == 'dead' and rec then
        local id = string.match(rec, '^([^\n]*)')
        if not string.match(id, '^%d+%-%d+$') then
          -- A record the worker could not read: give the letter an id.
          id = SHARD .. '-' .. redis.call('INCR', P .. 'ids')
        end
        redis.call('HSET', P .. 'dl:' .. id, 'key', key, 'customer', customer,
                   'record', rec, 'error', err, 'attempts', num, 'at', now)
        redis.call('RPUSH', P .. 'dlq', id)
        count('deadlettered')
      else
        count('done')
      end
      -- depth[key] = LLEN q (invariant of the index): its new value tells
      -- whether jobs are left. Checked against the list when it says none.
      local left = tonumber(redis.call('ZINCRBY', DEPTH, '-1', key))
      if left <= 0 then
        left = redis.call('LLEN', q)
        if left > 0 then
          redis.call('ZADD', DEPTH, left, key)
        end
      end
      if left > 0 then
        if meta[5] or meta[6] then
          redis.call('HDEL', m, 'a', 'err')
        end
        if schedule(key, customer, false, meta[4]) == 'ready' and claim_n == 0 then
          -- A draining worker claims nothing: tell the idle ones.
          woke = true
        end
      else
        redis.call('ZREM', DEPTH, key)
        unpin('depth')
        redis.call('DEL', m)
      end
    elseif typ == 'retry' then
      redis.call('HINCRBY', m, 'a', '1')
      redis.call('HSET', m, 'err', err)
      park_or_hold(key, customer, now + num)
      count('retried')
    elseif typ == 'park' then
      park_or_hold(key, customer, now + num)
      count('parked')
    elseif typ == 'hold' and token_replaced(customer, reason) then
      -- A hold for the customer's token that a `hookq token set` overtook
      -- (between the API's answer and this hold): run the key again with
      -- the new token, at the front, no attempt counted.
      if schedule(key, customer, true, meta[4]) == 'ready' then
        woke = true
      end
    elseif typ == 'hold' then
      if err ~= '' then
        redis.call('HSET', m, 'err', err)
      end
      hold_key(key, customer, reason, num == 1 and 1 or 0)
      if num == 1 then
        hold_customer(customer, reason)
      end
      count('held')
    elseif typ == 'release' then
      if schedule(key, customer, true) == 'ready' then
        woke = true
      end
    else
      return redis.error_reply('settle: unknown op ' .. tostring(typ))
    end
  end
end

flush_leases()
local now_s = string.format('%d', now)
promote(now_s, string.format('%d', claim_n + 64))
if reap(now_s, '64') > 0 then
  leases_ended = true
end
flush_rc()
rc_tail = false

-- Claim: the customers at the head of the ring are popped together (one
-- LPOP with a count); each gives its first ready key, and those with more
-- go back to the tail together, in the same order (one RPUSH): the same
-- round-robin as popping and pushing them one at a time. When the ring was
-- shorter than claim_n, the next pass takes the returned ones again.
-- Tokens: one INCRBY reserves claim_n of them (unused ones are skipped;
-- tokens only need to be unique and increasing).
local claimed = {}
local nclaimed = 0
local tok
local leases = {}
while nclaimed < claim_n do
  local customers = redis.call('LPOP', RC, nclaimed == 0 and ARGV[2]
                                  or string.format('%d', claim_n - nclaimed))
  if not customers then
    break
  end
  tok = tok or redis.call('INCRBY', P .. 'fence', ARGV[2]) - claim_n
  local back = {}
  for _, customer in ipairs(customers) do
    local rk = P .. 'rk:' .. customer
    -- Two at once: a second key means the customer has more (it goes back
    -- in front of its list); one alone left the list empty. So a customer
    -- with one ready key (the usual case) costs one call, not an LPOP and
    -- an LLEN.
    local two = redis.call('LPOP', rk, '2')
    local key = two[1]
    if two[2] then
      redis.call('LPUSH', rk, two[2])
      back[#back + 1] = customer
    end
    local m = P .. 'm:' .. key
    tok = tok + 1
    local ts = string.format('%d', tok)
    redis.call('HSET', m, 'st', 'active', 'tok', ts)
    leases[#leases + 1] = expiry
    leases[#leases + 1] = key
    local a = tonumber(redis.call('HGET', m, 'a') or '0')
    claimed[#claimed + 1] = key
    claimed[#claimed + 1] = customer
    claimed[#claimed + 1] = ts
    claimed[#claimed + 1] = a + 1
    claimed[#claimed + 1] = redis.call('LINDEX', P .. 'q:' .. key, '0')
    nclaimed = nclaimed + 1
  end
  if #back > 0 then
    redis.call('RPUSH', RC, unpack(back))
  end
end
if #leases > 0 then
  leases[#leases + 1] = '+inf'
  leases[#leases + 1] = LEASE_PIN
  redis.call('ZADD', LEASES, unpack(leases))
end

for name, n in pairs(counts) do
  stat(name, n)
end

-- Handed-back keys may suit a worker that is idle now.
if woke and redis.call('LLEN', P .. 'rc') > 0 then
  wake()
end

if leases_ended then
  unpin('leases')
end

local next_due = -1
local p = redis.call('ZRANGE', P .. 'parked', '0', '0', 'WITHSCORES')
if p[2] then
  next_due = tonumber(p[2])
end
local l = redis.call('ZRANGE', P .. 'leases', '0', '0', 'WITHSCORES')
if l[2] and l[1] ~= LEASE_PIN and (next_due < 0 or tonumber(l[2]) < next_due) then
  next_due = tonumber(l[2])
end
return {results, claimed, now, next_due}
