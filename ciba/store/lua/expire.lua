-- expire: moves a pending request past its expiry to expired, with its
-- audit events and the notification its agent is owed.
-- include: audit request
--
-- KEYS (every request script takes the keys of keysFor, in this order)
--   1   req                   {sNN}:req:<id>, the request hash
--   2   user_pending          {sNN}:pending:<user>, pending ids by expiry
--   3   agent_user_pending    {sNN}:pending-au:<client>:<user>
--   4   agent_user_counters   {sNN}:c:au:<client>:<user>, hash: r:<5m>, d:<hour>, s:<hour>, approved
--   5   user_counters         {sNN}:c:u:<user>, hash: s:<hour>
--   6   user_pushes           {sNN}:c:p:<user>:<minute>
--   7   expiries              {sNN}:expiries, pending ids by expiry
--   8   outbox                {sNN}:outbox, the shard notification outbox
--   9   user_grants           {sNN}:grants:<user>, grant ids by expiry
--   10  grant                 {sNN}:grant:<grant id> (when a grant is stored)
--   11  agent_counters        {sNN}:c:a:<client>, hash: this shard's share, r:<5m>
--   12  audit                 {sNN}:audit, the shard audit stream
--   13  audit_head            {sNN}:audit-head, its hash-chain head
-- ARGV
--   1    now_ms                the caller's clock
--   2    outbox_entry          the notification to deliver ('' for none)
--   3..  audit...              expected head, n, then hash and body per event
-- RETURNS
--   {'ok'}                     expired now
--   {'gone'}                   no such request (dropped from the indexes)
--   {'not_due'}                decided already, or not yet expired
--   {'stale', head}            the audit head moved: nothing written, retry
local req, user_pending, agent_user_pending = KEYS[1], KEYS[2], KEYS[3]
local agent_user_counters, user_counters, user_pushes, expiries = KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local outbox_key, user_grants, grant_key, agent_counters = KEYS[8], KEYS[9], KEYS[10], KEYS[11]
local audit, audit_head = KEYS[12], KEYS[13]
local a = audit_from(ARGV, 3)
local stale = audit_stale(audit_head, a)
if stale then return {'stale', stale} end
local f = redis.call('HMGET', req, 'state', 'exp')
local id = string.match(req, 'req:(.*)$')
if not f[1] then unpend(id, user_pending, agent_user_pending, expiries); return {'gone'} end
if f[1] ~= 'pending' or tonumber(ARGV[1]) < tonumber(f[2]) then
  if f[1] ~= 'pending' then unpend(id, user_pending, agent_user_pending, expiries) end
  return {'not_due'}
end
audit_write(audit, audit_head, a)
redis.call('HSET', req, 'state', 'expired')
unpend(id, user_pending, agent_user_pending, expiries)
outbox(outbox_key, ARGV[2])
return {'ok'}
