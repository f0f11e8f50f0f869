-- set_shadow: stores a shadow ruleset (replacing any other, resetting its
-- counts), audited and announced.
-- include: audit
--
-- KEYS
--   1    shadow         {dir}:rules:shadow
--   2    stats          {dir}:rules:shadow-stats
--   3    audit          {dir}:audit
--   4    audit_head     {dir}:audit-head
-- ARGV
--   1    src
--   2    digest
--   3    name
--   4    set_at         RFC 3339
--   5    set_by
--   6    channel        the rules channel
--   7    message        the announcement
--   8..  audit...       expected head, n, then hash and body per event
-- RETURNS
--   {'ok'} | {'stale', head}
local shadow, stats, audit, audit_head = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local a = audit_from(ARGV, 8)
local stale = audit_stale(audit_head, a)
if stale then return {'stale', stale} end
audit_write(audit, audit_head, a)
redis.call('DEL', shadow, stats)
redis.call('HSET', shadow, 'src', ARGV[1], 'digest', ARGV[2], 'name', ARGV[3], 'set_at', ARGV[4], 'set_by', ARGV[5])
redis.call('PUBLISH', ARGV[6], ARGV[7])
return {'ok'}
