-- put_user: replaces a user, moving its email index when the email
-- changed, audited.
-- include: audit
--
-- KEYS
--   1    user           {dir}:user:<id>
--   2    old_email      {dir}:user-email:<old email>
--   3    new_email      {dir}:user-email:<new email>
--   4    audit          {dir}:audit
--   5    audit_head     {dir}:audit-head
-- ARGV
--   1    user_json
--   2    id
--   3    old_email      '' for none
--   4    new_email      '' for none
--   5..  audit...       expected head, n, then hash and body per event
-- RETURNS
--   {'ok'}
--   {'missing'}         no such user
--   {'exists'}          the new email is another user's
--   {'stale', head}     the audit head moved: nothing written, retry
local user, old_key, new_key, audit, audit_head = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local a = audit_from(ARGV, 5)
local stale = audit_stale(audit_head, a)
if stale then return {'stale', stale} end
if redis.call('EXISTS', user) == 0 then return {'missing'} end
local old, new = ARGV[3], ARGV[4]
local moved = new ~= old
if moved and new ~= '' and redis.call('EXISTS', new_key) == 1 then return {'exists'} end
audit_write(audit, audit_head, a)
if moved and new ~= '' then redis.call('SET', new_key, ARGV[2]) end
if moved and old ~= '' then redis.call('DEL', old_key) end
redis.call('SET', user, ARGV[1])
return {'ok'}
