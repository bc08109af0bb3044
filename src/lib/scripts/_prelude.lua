-- _prelude: shared by every script (cmake/embed_scripts.cmake puts it in
-- front of each). Names the shard's keys and moves keys between states while
-- keeping the invariants of docs/queue-semantics.md. Nothing here runs on
-- its own.
local P = KEYS[1]
local SHARD = string.match(P, '^{.*:(%d+)}:$')
-- The shard's wake channel: in the shard's hash slot, so that on a Redis
-- Cluster it lives on the shard's master (wake()).
local WAKE = P .. 'wake'

-- While any lease exists, `leases` also holds LEASE_PIN (65 dashes: no ':',
-- so never a key) at +inf. A member longer than 64 bytes keeps the ZSET in
-- Redis's skiplist encoding, where an insert costs O(log n); below 128
-- members Redis would keep it as a listpack, where every insert scans the
-- whole set. Readers skip it; it goes with the last lease (unpin).
local LEASE_PIN = '-----------------------------------------------------------------'

-- After members of ZSET P..name were removed: drop the pin when it is all
-- that is left (unpin('leases'), unpin('depth')).
local function unpin(name)
  if redis.call('ZCARD', P .. name) == 1 and
      redis.call('ZSCORE', P .. name, LEASE_PIN) then
    redis.call('DEL', P .. name)
  end
end

-- The same pin for the enqueue path's indexes, set whenever a key goes from
-- idle to queued: LEASE_PIN at -inf in `depth` (readers skip it; it goes
-- with the last key, unpin) and as a field of `seq` (whose value, over
-- 64 bytes, makes it a hash table; it stays). With fewer than 128 keys Redis
-- would keep both as listpacks, where every ZADD and HINCRBY scans the set:
-- with 100 keys that cost 2-3 us of Redis per enqueued job. Once per script
-- call is enough: within a call, `depth` loses its pin only when no key is
-- left in it, and every key a call schedules is in it already.
local indexes_pinned = false
local function pin_indexes()
  if not indexes_pinned then
    redis.call('ZADD', P .. 'depth', '-inf', LEASE_PIN)
    redis.call('HSETNX', P .. 'seq', LEASE_PIN, LEASE_PIN)
    indexes_pinned = true
  end
end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function stat(name, n)
  redis.call('HINCRBY', P .. 'stats', name, n and string.format('%d', n) or '1')
end

-- While `rc_tail` is a table (settle sets one), customers that join the
-- ring at its tail are collected there, in order, and the caller appends
-- them with one RPUSH (flush_rc) before anything else reads the ring.
local rc_tail = false
local function flush_rc()
  if rc_tail and #rc_tail > 0 then
    redis.call('RPUSH', P .. 'rc', unpack(rc_tail))
    rc_tail = {}
  end
end

-- The key joins its customer's ready keys (front or tail); the customer
-- joins the ring when it had none (invariant 2).
local function make_ready(key, customer, front)
  local rk = P .. 'rk:' .. customer
  redis.call('HSET', P .. 'm:' .. key, 'st', 'ready')
  if front then
    if redis.call('LPUSH', rk, key) == 1 then
      redis.call('LPUSH', P .. 'rc', customer)
    end
  elseif redis.call('RPUSH', rk, key) == 1 then
    if rc_tail then
      rc_tail[#rc_tail + 1] = customer
    else
      redis.call('RPUSH', P .. 'rc', customer)
    end
  end
end

-- cw = 1: held because its customer is (released with the customer).
local function hold_key(key, customer, reason, cw)
  redis.call('HSET', P .. 'm:' .. key, 'st', 'held', 'why', reason, 'cw', cw)
  redis.call('HDEL', P .. 'm:' .. key, 'ha')
  redis.call('HSET', P .. 'held', key, reason)
  redis.call('SADD', P .. 'hk:' .. customer, key)
end

-- A key with jobs that is not active goes where it belongs: held when an
-- operator asked to hold it while it ran (m.ha) or when its customer is
-- held, else ready. Returns the state it went to.
-- `ha` may be passed when the caller has read m.ha already (false = none).
-- While `no_held_customers` is true (settle sets it when `hc` is empty), the
-- customer's hold is not looked up.
local no_held_customers = false
local function schedule(key, customer, front, ha)
  if ha == nil then
    ha = redis.call('HGET', P .. 'm:' .. key, 'ha')
  end
  if ha then
    hold_key(key, customer, ha, 0)
    return 'held'
  end
  local hc = not no_held_customers and redis.call('HGET', P .. 'hc', customer)
  if hc then
    hold_key(key, customer, hc, 1)
    return 'held'
  end
  make_ready(key, customer, front)
  return 'ready'
end

-- A held key goes back to ready, at the front of its customer's keys, its
-- head job unchanged (release, release_customer, token_set).
local function unhold_key(key, customer)
  redis.call('HDEL', P .. 'held', key)
  redis.call('SREM', P .. 'hk:' .. customer, key)
  redis.call('HDEL', P .. 'm:' .. key, 'why', 'cw', 'ha')
  make_ready(key, customer, true)
end

-- The customer's held keys that wanted(key) picks, the key with the
-- newest head job first (by the id's enqueue counter): releasing them in
-- this order, each to the front, leaves the oldest waiting job first.
local function held_newest_first(customer, wanted)
  local back = {}
  for _, key in ipairs(redis.call('SMEMBERS', P .. 'hk:' .. customer)) do
    if wanted(key) then
      local head = redis.call('LINDEX', P .. 'q:' .. key, 0) or ''
      back[#back + 1] = {tonumber(string.match(head, '^%d+%-(%d+)')) or 0, key}
    end
  end
  table.sort(back, function(x, y)
    if x[1] ~= y[1] then
      return x[1] > y[1]
    end
    return x[2] > y[2]
  end)
  local keys = {}
  for i, b in ipairs(back) do
    keys[i] = b[2]
  end
  return keys
end

local function park_key(key, due)
  redis.call('HSET', P .. 'm:' .. key, 'st', 'parked')
  redis.call('ZADD', P .. 'parked', due, key)
end

-- Parked keys whose time has come become ready (at the tail).
local function promote(now, limit)
  local due = redis.call('ZRANGEBYSCORE', P .. 'parked', '-inf', now, 'LIMIT', '0', limit)
  for _, key in ipairs(due) do
    redis.call('ZREM', P .. 'parked', key)
    local c = redis.call('HGET', P .. 'm:' .. key, 'c')
    schedule(key, c, false)
  end
  return #due
end

-- Expired leases: the key goes back in front, its head job unchanged, one
-- attempt counted. The old holder's token no longer matches (G6).
local function reap(now, limit)
  local expired = redis.call('ZRANGEBYSCORE', P .. 'leases', '-inf', now, 'LIMIT', '0', limit)
  for _, key in ipairs(expired) do
    local m = P .. 'm:' .. key
    redis.call('ZREM', P .. 'leases', key)
    redis.call('HINCRBY', m, 'a', '1')
    redis.call('HSET', m, 'err', 'lease expired')
    redis.call('HDEL', m, 'tok')
    schedule(key, redis.call('HGET', m, 'c'), true)
    stat('reaped')
  end
  return #expired
end

-- Tell idle workers that a key of this shard became ready. SPUBLISH
-- (sharded Pub/Sub, Redis >= 7.0) keeps the message on the shard's master
-- and its replicas, where PUBLISH on a cluster goes to every node over the
-- cluster bus. A server without SPUBLISH (Redis 6) makes the pcall fail,
-- and the plain PUBLISH goes out instead: the server itself says what it
-- has, at no cost on 7.0, and nothing has to be learnt and passed in. The
-- subscribers agree with no configuration: they SUBSCRIBE to the channel
-- everywhere and SSUBSCRIBE where the server has it (router.c, conn.c).
local function wake()
  if type(redis.pcall('SPUBLISH', WAKE, '1')) == 'table' then
    redis.call('PUBLISH', WAKE, '1')
  end
end

