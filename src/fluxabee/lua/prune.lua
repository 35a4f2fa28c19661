-- Remove the group's idle consumers that hold nothing (names a kill -9 left behind).
-- KEYS[1] stream; ARGV[1] group; ARGV[2] idle ms; ARGV[3] name prefix; ARGV[4] a name to keep.
-- Returns the removed names: none when the stream or the group does not exist.
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind == 'none' then return {} end
if kind ~= 'stream' then
  return redis.error_reply('WRONGTYPE Operation against a key holding the wrong kind of value')
end
local ok, consumers = pcall(redis.call, 'XINFO', 'CONSUMERS', KEYS[1], ARGV[1])
if not ok then return {} end
local idle_limit, prefix, removed = tonumber(ARGV[2]), ARGV[3], {}
for _, row in ipairs(consumers) do
  local info = {}
  for i = 1, #row, 2 do info[row[i]] = row[i + 1] end
  local name = info['name']
  if name ~= ARGV[4] and string.sub(name, 1, #prefix) == prefix
      and info['pending'] == 0 and info['idle'] >= idle_limit then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], name)
    removed[#removed + 1] = name
  end
end
return removed
