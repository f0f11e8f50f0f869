-- delete_client: removes a client, audits and announces it.
-- include: audit
--
-- KEYS
--   1    client         {dir}:client:<id>
--   2    clients        {dir}:clients, the index
--   3    channel        {dir}:clients-changed (published to, not a key)
--   4    audit          {dir}:audit
--   5    audit_head     {dir}:audit-head
-- ARGV
--   1    id
--   2..  audit...       expected head, n, then hash and body per event
-- RETURNS
--   {'ok'} | {'missing'} | {'stale', head}
local client, clients, channel, audit, audit_head = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local a = audit_from(ARGV, 2)
local stale = audit_stale(audit_head, a)
if stale then return {'stale', stale} end
if redis.call('EXISTS', client) == 0 then return {'missing'} end
audit_write(audit, audit_head, a)
redis.call('DEL', client)
redis.call('SREM', clients, ARGV[1])
redis.call('PUBLISH', channel, ARGV[1])
return {'ok'}
