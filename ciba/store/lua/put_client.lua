-- put_client: creates or replaces a client, audits and announces it.
-- include: audit
--
-- KEYS
--   1    client         {dir}:client:<id>
--   2    clients        {dir}:clients, the index
--   3    channel        {dir}:clients-changed (published to, not a key)
--   4    audit          {dir}:audit
--   5    audit_head     {dir}:audit-head
-- ARGV
--   1    client_json
--   2    id
--   3    mode           create | put
--   4..  audit...       expected head, n, then hash and body per event
-- RETURNS
--   {'ok'}
--   {'exists'}          create of a taken id
--   {'missing'}         put of an unknown id
--   {'stale', head}     the audit head moved: nothing written, retry
local client, clients, channel, audit, audit_head = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local a = audit_from(ARGV, 4)
local stale = audit_stale(audit_head, a)
if stale then return {'stale', stale} end
local exists = redis.call('EXISTS', client) == 1
if ARGV[3] == 'create' and exists then return {'exists'} end
if ARGV[3] == 'put' and not exists then return {'missing'} end
audit_write(audit, audit_head, a)
redis.call('SET', client, ARGV[1])
redis.call('SADD', clients, ARGV[2])
redis.call('PUBLISH', channel, ARGV[2])
return {'ok'}
