-- audit_only: appends audit events that record no state change of their own.
-- include: audit
--
-- KEYS
--   1    audit        the shard's audit stream
--   2    audit_head   its hash-chain head
-- ARGV
--   1..  audit...     expected head, n, then hash and body per event
-- RETURNS
--   {'ok'}            written
--   {'stale', head}   the audit head moved: nothing written, retry
local audit, audit_head = KEYS[1], KEYS[2]
local a = audit_from(ARGV, 1)
local stale = audit_stale(audit_head, a)
if stale then return {'stale', stale} end
audit_write(audit, audit_head, a)
return {'ok'}
