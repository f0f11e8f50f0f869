-- revoke_mandate: revokes an intent mandate of a user: later requests
-- under it fail its re-check, and tokens issued under it are inactive.
-- include: audit
--
-- KEYS
--   1    mandate        {sNN}:mandate:<id>
--   2    audit          {sNN}:audit
--   3    audit_head     {sNN}:audit-head
-- ARGV
--   1    user           the mandate's user (must own it)
--   2    now_ms         the caller's clock, stored as revoked_at
--   3..  audit...       expected head, n, then hash and body per event
-- RETURNS
--   {'ok'}              revoked now
--   {'already'}         revoked before: nothing written
--   {'missing'}         no such mandate, or another user's
--   {'stale', head}     the audit head moved: nothing written, retry
local mandate, audit, audit_head = KEYS[1], KEYS[2], KEYS[3]
local a = audit_from(ARGV, 3)
local stale = audit_stale(audit_head, a)
if stale then return {'stale', stale} end
local f = redis.call('HMGET', mandate, 'user', 'revoked_at')
if not f[1] or f[1] ~= ARGV[1] then return {'missing'} end
if f[2] then return {'already'} end
audit_write(audit, audit_head, a)
redis.call('HSET', mandate, 'revoked_at', ARGV[2])
return {'ok'}
