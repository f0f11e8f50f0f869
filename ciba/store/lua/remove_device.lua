-- remove_device: deletes a device and audits it in one step.
-- include: audit
--
-- KEYS
--   1    device         {dir}:device:<id>
--   2    user_devices   {dir}:devices:<user>
--   3    audit          {dir}:audit
--   4    audit_head     {dir}:audit-head
-- ARGV
--   1    device_id
--   2..  audit...       expected head, n, then hash and body per event
-- RETURNS
--   {'ok'} | {'missing'} | {'stale', head}
local device, user_devices, audit, audit_head = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local a = audit_from(ARGV, 2)
local stale = audit_stale(audit_head, a)
if stale then return {'stale', stale} end
if redis.call('EXISTS', device) == 0 then return {'missing'} end
audit_write(audit, audit_head, a)
redis.call('DEL', device)
redis.call('SREM', user_devices, ARGV[1])
return {'ok'}
