-- Hand again exactly the given entries that the consumer still holds: each retry of an
-- event of a failed batch (poison isolation) is a delivery of its own, counted by Redis.
-- KEYS[1] stream; KEYS[2] the consumer_single lock key (only for consumer_single).
-- ARGV[1] group, ARGV[2] consumer, ARGV[3] lock token, ARGV[4] lock TTL ms, ARGV[5..] IDs.
-- Returns {0, pttl} when another holder has the lock, else {1, entries, counts}: entries in
-- XRANGE shape ({id, fields}, or {id, false} for an entry deleted from the stream) and the
-- delivery count of each after this delivery. IDs the consumer no longer holds are skipped.
if #KEYS > 1 then
  local holder = redis.call('GET', KEYS[2])
  if holder and holder ~= ARGV[3] then
    return {0, redis.call('PTTL', KEYS[2])}
  end
  redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4])
end
local entries, counts = {}, {}
for i = 5, #ARGV do
  local held = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1, ARGV[2])
  if #held > 0 then
    local claimed = redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i])
    if claimed[1] then
      entries[#entries + 1] = claimed[1]
      counts[#counts + 1] = held[1][4] + 1
    else
      entries[#entries + 1] = {ARGV[i], false}
      counts[#counts + 1] = held[1][4]
    end
  end
end
return {1, entries, counts}
