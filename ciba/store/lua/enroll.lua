-- enroll: consumes an enrollment code, stores the device and audits the
-- enrollment in one step: a code enrolls one device, once.
-- include: audit
--
-- KEYS
--   1    code           {dir}:enroll:<sha256(code)>, holding the user id
--   2    device         {dir}:device:<id>
--   3    user_devices   {dir}:devices:<user>
--   4    user           {dir}:user:<user>
--   5    audit          {dir}:audit
--   6    audit_head     {dir}:audit-head
-- ARGV
--   1    device_json    the device (user set)
--   2    device_id
--   3    user           the user the code named when read
--   4..  audit...       expected head, n, then hash and body per event
-- RETURNS
--   {'ok'}              enrolled
--   {'bad_code'}        the code is used, expired or names another user, or the user is gone
--   {'stale', head}     the audit head moved: nothing written, retry
local code, device, user_devices, user, audit, audit_head = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local a = audit_from(ARGV, 4)
local stale = audit_stale(audit_head, a)
if stale then return {'stale', stale} end
if redis.call('GET', code) ~= ARGV[3] or redis.call('EXISTS', user) == 0 then return {'bad_code'} end
audit_write(audit, audit_head, a)
redis.call('DEL', code)
redis.call('SET', device, ARGV[1])
redis.call('SADD', user_devices, ARGV[2])
return {'ok'}
