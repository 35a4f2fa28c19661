-- Find the entry at a position of a stream without sending the entries before it: walk
-- past them here, a page at a time, at most a budget of entries per call (so a call never
-- blocks the server long), and answer one ID.
-- KEYS[1] stream; ARGV[1] "rev" (newest first, XREVRANGE) or "fwd" (oldest first, XRANGE);
-- ARGV[2] the ID to start after ("" for the end the walk starts from); ARGV[3] the position
-- wanted (1 is the first entry after the start); ARGV[4] the budget; ARGV[5] the page.
-- Returns {1, id}: the entry at that position; {0, id, left}: the budget ran out at id,
-- call again from id for the left-th entry; {-1}: the stream ended first.
local key, rev, start = KEYS[1], ARGV[1] == 'rev', ARGV[2]
local left, budget, page = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
while true do
  local n = math.min(page, left, budget)
  local got
  if rev then
    got = redis.call('XREVRANGE', key, start == '' and '+' or '(' .. start, '-', 'COUNT', n)
  else
    got = redis.call('XRANGE', key, start == '' and '-' or '(' .. start, '+', 'COUNT', n)
  end
  if #got == 0 then return {-1} end
  start = got[#got][1]
  left, budget = left - #got, budget - #got
  if left == 0 then return {1, start} end
  if #got < n then return {-1} end
  if budget <= 0 then return {0, start, left} end
end
