-- clear_shadow: turns shadow mode off, audited and announced.
-- include: audit
--
-- KEYS
--   1    shadow         {dir}:rules:shadow
--   2    stats          {dir}:rules:shadow-stats
--   3    audit          {dir}:audit
--   4    audit_head     {dir}:audit-head
-- ARGV
--   1    channel        the rules channel
--   2    message        the announcement
--   3..  audit...       expected head, n, then hash and body per event
-- RETURNS
--   {'ok'} | {'missing'} (shadow mode was off) | {'stale', head}
local shadow, stats, audit, audit_head = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local a = audit_from(ARGV, 3)
local stale = audit_stale(audit_head, a)
if stale then return {'stale', stale} end
if redis.call('EXISTS', shadow) == 0 then return {'missing'} end
audit_write(audit, audit_head, a)
redis.call('DEL', shadow, stats)
redis.call('PUBLISH', ARGV[1], ARGV[2])
return {'ok'}
