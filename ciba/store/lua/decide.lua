-- decide: records the first decision on a pending request of a user.
-- include: audit request mandate
--
-- KEYS (every request script takes the keys of keysFor, in this order)
--   1   req                   {sNN}:req:<id>, the request hash
--   2   user_pending          {sNN}:pending:<user>, pending ids by expiry
--   3   agent_user_pending    {sNN}:pending-au:<client>:<user>
--   4   agent_user_requests   {sNN}:c:au:<client>:<user>:r:<5m>, approvals per 5 minutes
--   5   agent_user_approvals  {sNN}:c:au:<client>:<user>:approved, approvals ever
--   6   agent_user_spend      {sNN}:c:au:<client>:<user>:s:<hour>
--   7   user_spend            {sNN}:c:u:<user>:s:<hour>
--   8   agent_user_denials    {sNN}:c:au:<client>:<user>:d:<hour>
--   9   user_pushes           {sNN}:c:u:<user>:p:<minute>
--   10  expiries              {sNN}:expiries, pending ids by expiry
--   11  outbox                {sNN}:outbox, the shard notification outbox
--   12  user_grants           {sNN}:grants:<user>, grant ids by expiry
--   13  grant                 {sNN}:grant:<grant id> (when a grant is stored)
--   14  agent_requests        {sNN}:c:a:<client>:r:<5m>, this shard's share
--   15  mandate               {sNN}:mandate:<id> (of an intent mandate, when one is involved)
--   16  mandate_taken         {sNN}:mandate:<id>:taken, the requests approved under it
--   17  user_mandates         {sNN}:mandates:<user>, the user's mandate ids
--   18  audit                 {sNN}:audit, the shard audit stream
--   19  audit_head            {sNN}:audit-head, its hash-chain head
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
--   14.. audit...              expected head, n, then hash and body per event
-- RETURNS
--   {'ok'}                     decided
--   {'missing'}                no such request, or another user's
--   {'decided'}                already decided or expired: the first decision wins
--   {'stale', head}            the audit head moved: nothing written, retry
local req, user_pending, agent_user_pending = KEYS[1], KEYS[2], KEYS[3]
local agent_user_requests, agent_user_approvals, agent_user_spend = KEYS[4], KEYS[5], KEYS[6]
local user_spend, agent_user_denials, user_pushes, expiries = KEYS[7], KEYS[8], KEYS[9], KEYS[10]
local outbox_key, user_grants, grant_key, agent_requests = KEYS[11], KEYS[12], KEYS[13], KEYS[14]
local mandate, mandate_taken, user_mandates = KEYS[15], KEYS[16], KEYS[17]
local audit, audit_head = KEYS[18], KEYS[19]
local a = audit_from(ARGV, 14)
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
  approve_counters(agent_user_requests, agent_requests, agent_user_approvals, agent_user_spend, user_spend, tonumber(ARGV[5]))
  grant(user_grants, grant_key, ARGV[7], ARGV[8], now)
  mandate_create(mandate, user_mandates, ARGV[9], ARGV[10], ARGV[11], ARGV[12], ARGV[13])
else
  redis.call('HSET', req, 'state', 'denied')
  deny_counters(agent_user_denials)
end
outbox(outbox_key, ARGV[6])
return {'ok'}
