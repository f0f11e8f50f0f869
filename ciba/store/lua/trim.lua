-- trim: removes the audit events up to and including an exported entry,
-- keeping the hash of the newest trimmed one as the chain's anchor.
--
-- KEYS
--   1    stream       the shard's audit stream
--   2    anchor       {sNN}:audit-anchor, where verification starts
-- ARGV
--   1    last_id      the last exported entry id
--   2    last_hash    its hash (the SHA-256 of its body, which Lua cannot compute)
-- RETURNS
--   the number of entries removed (0 when last_id is not in the stream)
local stream, anchor, last_id, h = KEYS[1], KEYS[2], ARGV[1], ARGV[2]
local last = redis.call('XRANGE', stream, last_id, last_id)
if #last == 0 then return 0 end
local before = redis.call('XLEN', stream)
redis.call('XTRIM', stream, 'MINID', last_id)
-- XTRIM MINID keeps ids >= MINID: delete the exported entry itself too.
redis.call('XDEL', stream, last_id)
redis.call('SET', anchor, h)
return before - redis.call('XLEN', stream)
