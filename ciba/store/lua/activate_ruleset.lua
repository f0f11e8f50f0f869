-- activate_ruleset: makes a stored version active again, audited and
-- announced.
-- include: audit
--
-- KEYS
--   1    meta           {dir}:rules:meta
--   2    activated      {dir}:rules:activated
--   3    active         {dir}:rules:active
--   4    audit          {dir}:audit
--   5    audit_head     {dir}:audit-head
-- ARGV
--   1    version
--   2    activation     the activation JSON
--   3    channel        the rules channel
--   4    message        the announcement
--   5..  audit...       expected head, n, then hash and body per event
-- RETURNS
--   {'ok'} | {'missing'} (no such version) | {'stale', head}
local meta, activated, active, audit, audit_head = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local a = audit_from(ARGV, 5)
local stale = audit_stale(audit_head, a)
if stale then return {'stale', stale} end
if redis.call('HEXISTS', meta, ARGV[1]) == 0 then return {'missing'} end
audit_write(audit, audit_head, a)
redis.call('HSET', activated, ARGV[1], ARGV[2])
redis.call('SET', active, ARGV[1])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return {'ok'}
