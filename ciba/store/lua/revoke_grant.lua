-- revoke_grant: revokes a grant of a user until the grant would expire.
-- include: audit
--
-- KEYS
--   1    grant          {sNN}:grant:<id>
--   2    revocation     {sNN}:rev:grant:<id>
--   3    audit          {sNN}:audit
--   4    audit_head     {sNN}:audit-head
-- ARGV
--   1    user           the revoking user (must own the grant)
--   2    now_ms         the caller's clock, stored as the revocation
--   3..  audit...       expected head, n, then hash and body per event
-- RETURNS
--   {'ok'}              revoked (now or before)
--   {'missing'}         no such grant, or another user's
--   {'stale', head}     the audit head moved: nothing written, retry
local grant, revocation, audit, audit_head = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local a = audit_from(ARGV, 3)
local stale = audit_stale(audit_head, a)
if stale then return {'stale', stale} end
local g = redis.call('GET', grant)
if not g then return {'missing'} end
local rec = cjson.decode(g)
if rec['user_id'] ~= ARGV[1] then return {'missing'} end
if redis.call('EXISTS', revocation) == 1 then return {'ok'} end
local ttl = redis.call('PTTL', grant)
if ttl < 1000 then ttl = 1000 end
audit_write(audit, audit_head, a)
redis.call('SET', revocation, ARGV[2], 'PX', ttl)
return {'ok'}
