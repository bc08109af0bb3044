-- worker_gone: a worker process that stops says so (hookq workers), so that
-- it leaves the list at once instead of 5 s later.
-- KEYS[1] = the registry's prefix "{ns:meta}:"
-- ARGV: id (host:pid:started)
-- Reply: 1 when it was listed.
redis.call('DEL', P .. 'worker:' .. ARGV[1])
return redis.call('ZREM', P .. 'workers', ARGV[1])
