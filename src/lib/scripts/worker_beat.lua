-- worker_beat: a worker process says it is alive (DESIGN §3.7 "Many hosts",
-- hookq workers). Sent every second by each hq_worker; an entry not renewed
-- within ARGV[8] ms is gone: its hash expires and `workers` skips it.
-- KEYS[1] = the registry's prefix "{ns:workers}:" (a hash tag of its own,
-- so that the registry is one slot and no shard's master carries it)
-- ARGV: id (host:pid:started), host, pid, version, started_ms, loops,
--       in_flight, ttl_ms
-- Reply: Redis TIME in ms (the entry's last_seen).
local now = now_ms()
local ttl = tonumber(ARGV[8])
local k = P .. 'worker:' .. ARGV[1]
redis.call('HSET', k, 'host', ARGV[2], 'pid', ARGV[3], 'version', ARGV[4],
           'started', ARGV[5], 'loops', ARGV[6], 'in_flight', ARGV[7],
           'last_seen', string.format('%d', now))
redis.call('PEXPIRE', k, ttl)
redis.call('ZADD', P .. 'workers', now, ARGV[1])
-- Forget the members whose hash has expired, so the index stays small.
redis.call('ZREMRANGEBYSCORE', P .. 'workers', '-inf', '(' .. string.format('%d', now - ttl))
return now
