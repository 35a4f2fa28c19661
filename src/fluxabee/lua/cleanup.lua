-- Remove a consumer from the group only when it holds no pending entries, atomically.
-- (Plain XGROUP DELCONSUMER drops its pending entries: Redis never redelivers them.)
-- KEYS[1] stream; ARGV[1] group; ARGV[2] consumer.
-- Returns 1 when removed, 0 when kept (it still holds entries), -1 when no group exists.
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local ok, pending = pcall(redis.call, 'XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2])
if not ok then return -1 end
if #pending > 0 then return 0 end
redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
return 1
