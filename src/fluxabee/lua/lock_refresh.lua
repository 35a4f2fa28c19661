-- Take or extend a consumer_single lock: succeeds when the key is free or already ours.
-- KEYS[1] lock key; ARGV[1] token; ARGV[2] TTL ms. Returns 1 when held, else -PTTL left.
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then
  return -redis.call('PTTL', KEYS[1])
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
