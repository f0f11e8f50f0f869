-- create_user: stores a new user and its email index, audited.
-- include: audit
--
-- KEYS
--   1    user           {dir}:user:<id>
--   2    email_index    {dir}:user-email:<email>
--   3    users          {dir}:users, the index
--   4    audit          {dir}:audit
--   5    audit_head     {dir}:audit-head
-- ARGV
--   1    user_json
--   2    id
--   3    email          '' for none
--   4..  audit...       expected head, n, then hash and body per event
-- RETURNS
--   {'ok'}
--   {'exists'}          the id or the email is taken
--   {'stale', head}     the audit head moved: nothing written, retry
local user, email_index, users, audit, audit_head = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local a = audit_from(ARGV, 4)
local stale = audit_stale(audit_head, a)
if stale then return {'stale', stale} end
if redis.call('EXISTS', user) == 1 then return {'exists'} end
if ARGV[3] ~= '' and redis.call('EXISTS', email_index) == 1 then return {'exists'} end
audit_write(audit, audit_head, a)
if ARGV[3] ~= '' then redis.call('SET', email_index, ARGV[2]) end
redis.call('SET', user, ARGV[1])
redis.call('SADD', users, ARGV[2])
return {'ok'}
