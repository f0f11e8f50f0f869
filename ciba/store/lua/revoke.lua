-- revoke: stores a revocation (a token's or an agent's) with its event.
-- include: audit
--
-- KEYS
--   1    revocation     {sNN}:rev:jti:<jti>, {sNN}:rev:agent:<client>:<user> or {dir}:rev-agent:<client>
--   2    audit          the audit stream of that slot
--   3    audit_head     its hash-chain head
-- ARGV
--   1    value          the revocation time (ms)
--   2    ttl_ms         how long it must be kept
--   3..  audit...       expected head, n, then hash and body per event
-- RETURNS
--   {'ok'} | {'stale', head}
local revocation, audit, audit_head = KEYS[1], KEYS[2], KEYS[3]
local a = audit_from(ARGV, 3)
local stale = audit_stale(audit_head, a)
if stale then return {'stale', stale} end
audit_write(audit, audit_head, a)
redis.call('SET', revocation, ARGV[1], 'PX', ARGV[2])
return {'ok'}
