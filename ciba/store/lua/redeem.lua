-- redeem: marks an approved request redeemed, with its token-issued event:
-- one auth_req_id yields at most one token response, ever.
-- include: audit
--
-- KEYS
--   1    req          {sNN}:req:<id>
--   2    audit        the shard's audit stream
--   3    audit_head   its hash-chain head
-- ARGV
--   1    now_ms       the caller's clock
--   2..  audit...     expected head, n, then hash and body per event
-- RETURNS
--   {'ok'}            redeemed
--   {'gone'}          not approved (any more) or expired
--   {'stale', head}   the audit head moved: nothing written, retry
local req, audit, audit_head = KEYS[1], KEYS[2], KEYS[3]
local a = audit_from(ARGV, 2)
local stale = audit_stale(audit_head, a)
if stale then return {'stale', stale} end
local st = redis.call('HMGET', req, 'state', 'exp')
if st[1] ~= 'approved' or tonumber(ARGV[1]) >= tonumber(st[2]) then return {'gone'} end
audit_write(audit, audit_head, a)
redis.call('HSET', req, 'state', 'redeemed')
return {'ok'}
