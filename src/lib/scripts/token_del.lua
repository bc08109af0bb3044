-- token_del: forget a customer's API token (hookq token del). Its keys keep
-- running; the next job that needs the token holds the customer with reason
-- `no-token` until a token is set again.
-- KEYS[1] = shard prefix "{ns:S}:"
-- ARGV: customer
-- Reply: 1 deleted, 0 the customer had no token.
return redis.call('HDEL', P .. 'tok', ARGV[1])
