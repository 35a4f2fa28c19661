-- consumer_single's read: reads the group only while holding the stream's lock, atomically,
-- so two processes can never both be handed events of one stream.
-- KEYS[1] stream, KEYS[2] lock key
-- ARGV[1] lock token, ARGV[2] lock TTL ms, ARGV[3] group, ARGV[4] consumer, ARGV[5] count,
-- ARGV[6] an ID ('0': all) to read the consumer's own pending entries after it first, '>' for
-- new ones only.
-- Returns {0, pttl} when another holder has the lock, else
-- {1, xreadgroup reply or false, xpending reply or false, last entry ID or false}
-- (the last ID is set only when nothing was read: the caller waits for newer entries).
local holder = redis.call('GET', KEYS[2])
if holder and holder ~= ARGV[1] then
  return {0, redis.call('PTTL', KEYS[2])}
end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
if ARGV[6] ~= '>' then
  local own = redis.call('XREADGROUP', 'GROUP', ARGV[3], ARGV[4], 'COUNT', ARGV[5],
    'STREAMS', KEYS[1], ARGV[6])
  if own and #own[1][2] > 0 then
    local from = '-'
    if ARGV[6] ~= '0' then from = '(' .. ARGV[6] end
    local counts = redis.call('XPENDING', KEYS[1], ARGV[3], from, '+', ARGV[5], ARGV[4])
    return {1, own, counts, false}
  end
end
local new = redis.call('XREADGROUP', 'GROUP', ARGV[3], ARGV[4], 'COUNT', ARGV[5],
  'STREAMS', KEYS[1], '>')
if new then
  return {1, new, false, false}
end
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #last > 0 then
  return {1, false, false, last[1][1]}
end
return {1, false, false, '0-0'}
