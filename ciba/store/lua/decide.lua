-- decide: records the first decision on a pending request of a user.
-- include: audit request mandate
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
--   12  mandate               {sNN}:mandate:<id> (of an intent mandate, when one is involved)
--   13  mandate_taken         {sNN}:mandate:<id>:taken, the requests approved under it
--   14  user_mandates         {sNN}:mandates:<user>, the user's mandate ids
--   15  audit                 {sNN}:audit, the shard audit stream
--   16  audit_head            {sNN}:audit-head, its hash-chain head
-- ARGV
--   1    verdict               approve | deny
--   2    user                  the deciding user (must own the request)
--   3    now_ms                the caller's clock
--   4    approval              the approval JSON ('' when denying)
--   5    amount                the amount counted on approval
--   6    outbox_entry          the notification to deliver ('' for none)
--   7    grant_rec             the grant JSON ('' for none)
--   8    grant_exp_ms          the grant's expiry
--   9    mandate_rec           the intent mandate the approval creates ('' for none)
--   10   mandate_until_ms      its end
--   11   mandate_budget        its budget in cents (-1: none)
--   12   mandate_max_uses      its uses (0: unlimited)
--   13   mandate_ttl_ms        how long Redis keeps it (garbage only)
--   14   bucket_5m             the current five-minute bucket (counter fields r:<n>)
--   15   bucket_hour           the current hour bucket (counter fields d:<n>, s:<n>)
--   16   grant_id              the grant's id ('' for none)
--   17.. audit...              expected head, n, then hash and body per event
-- RETURNS
--   {'ok'}                     decided
--   {'missing'}                no such request, or another user's
--   {'decided'}                already decided or expired: the first decision wins
--   {'stale', head}            the audit head moved: nothing written, retry
local req, user_pending, agent_user_pending = KEYS[1], KEYS[2], KEYS[3]
local agent_user_counters, user_counters, user_pushes, expiries = KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local outbox_key, user_grants, grant_key, agent_counters = KEYS[8], KEYS[9], KEYS[10], KEYS[11]
local mandate, mandate_taken, user_mandates = KEYS[12], KEYS[13], KEYS[14]
local audit, audit_head = KEYS[15], KEYS[16]
local a = audit_from(ARGV, 17)
local stale = audit_stale(audit_head, a)
if stale then return {'stale', stale} end
local now = ARGV[3]
local f = redis.call('HMGET', req, 'state', 'user', 'exp')
if not f[1] or f[2] ~= ARGV[2] then return {'missing'} end
if f[1] ~= 'pending' or tonumber(now) >= tonumber(f[3]) then return {'decided'} end
local id = string.match(req, 'req:(.*)$')
audit_write(audit, audit_head, a)
unpend(id, user_pending, agent_user_pending, expiries)
if ARGV[1] == 'approve' then
  redis.call('HSET', req, 'state', 'approved', 'approval', ARGV[4])
  approve_counters(agent_user_counters, user_counters, agent_counters, ARGV[14], ARGV[15], tonumber(ARGV[5]))
  grant(user_grants, grant_key, ARGV[16], ARGV[7], ARGV[8], now)
  mandate_create(mandate, user_mandates, ARGV[9], ARGV[10], ARGV[11], ARGV[12], ARGV[13])
else
  redis.call('HSET', req, 'state', 'denied')
  deny_counters(agent_user_counters, ARGV[14], ARGV[15])
end
outbox(outbox_key, ARGV[6])
return {'ok'}
