-- delete_user: removes a user and its email index, audited.
-- include: audit
--
-- KEYS
--   1    user           {dir}:user:<id>
--   2    email_index    {dir}:user-email:<email>
--   3    users          {dir}:users, the index
--   4    audit          {dir}:audit
--   5    audit_head     {dir}:audit-head
-- ARGV
--   1    id
--   2..  audit...       expected head, n, then hash and body per event
-- RETURNS
--   {'ok'} | {'missing'} | {'stale', head}
local user, email_index, users, audit, audit_head = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local a = audit_from(ARGV, 2)
local stale = audit_stale(audit_head, a)
if stale then return {'stale', stale} end
if redis.call('EXISTS', user) == 0 then return {'missing'} end
audit_write(audit, audit_head, a)
redis.call('DEL', user, email_index)
redis.call('SREM', users, ARGV[1])
return {'ok'}
