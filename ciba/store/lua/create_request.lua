-- create_request: stores a request decided at /bc-authorize with its
-- counters, indexes, grant, outbox entry and audit events, in one step.
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
--   1    rec                   the request JSON
--   2    state                 pending | approved | denied
--   3    now_ms                the caller's clock
--   4    exp_ms                the request's expiry
--   5    interval              seconds between polls
--   6    approval              the approval JSON ('' unless approved)
--   7    amount                the amount counted on approval
--   8    max_user_pending      cap of pending requests per user (0: none)
--   9    max_agent_user_pending  the same per agent and user
--   10   max_pushes            cap of pushes per user and minute (0: none)
--   11   id                    the request id
--   12   outbox_entry          the notification to deliver ('' for none)
--   13   gc_ttl_ms             how long Redis keeps the hash (garbage only)
--   14   grant_rec             the grant JSON ('' for none)
--   15   grant_exp_ms          the grant's expiry
--   16   mandate_id            the mandate to charge ('' for none)
--   17   mandate_amount        cents it takes
--   18   mandate_uses          uses it takes
--   19   mandate_taken         the entry noted in its taken list
--   20   bucket_5m             the current five-minute bucket (counter fields r:<n>)
--   21   bucket_hour           the current hour bucket (counter fields d:<n>, s:<n>)
--   22   client                the request's client id
--   23   user                  the request's user id
--   24   grant_id              the grant's id ('' for none)
--   25.. audit...              expected head, n, then hash and body per event
-- RETURNS
--   {'ok'}                     stored (a denial stores only counters and audit)
--   {'limit', which, retry_ms} a cap is reached: user_pending, agent_user_pending or pushes_per_minute
--   {'mandate', why}           the mandate no longer allows the charge: nothing written
--   {'stale', head}            the audit head moved: nothing written, retry
local req, user_pending, agent_user_pending = KEYS[1], KEYS[2], KEYS[3]
local agent_user_counters, user_counters, user_pushes, expiries = KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local outbox_key, user_grants, grant_key, agent_counters = KEYS[8], KEYS[9], KEYS[10], KEYS[11]
local mandate, mandate_taken, user_mandates = KEYS[12], KEYS[13], KEYS[14]
local audit, audit_head = KEYS[15], KEYS[16]
local a = audit_from(ARGV, 25)
local stale = audit_stale(audit_head, a)
if stale then return {'stale', stale} end
local now = tonumber(ARGV[3])
local state, exp_ms, id = ARGV[2], ARGV[4], ARGV[11]
local r_now, hour, client, user = ARGV[20], ARGV[21], ARGV[22], ARGV[23]
-- A request approved by a mandate re-checks it here, atomically with the
-- charge: concurrent requests never spend more than it allows.
local why = mandate_refused(mandate, ARGV[16], client, user, now, tonumber(ARGV[17]), tonumber(ARGV[18]))
if why then return {'mandate', why} end
if state == 'denied' then
  audit_write(audit, audit_head, a)
  deny_counters(agent_user_counters, r_now, hour)
  return {'ok'}
end
if state == 'pending' then
  redis.call('ZREMRANGEBYSCORE', user_pending, '-inf', now)
  redis.call('ZREMRANGEBYSCORE', agent_user_pending, '-inf', now)
  local function full(key, max)
    if max > 0 and redis.call('ZCARD', key) >= max then
      local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
      return tonumber(first[2]) - now
    end
    return false
  end
  local r = full(user_pending, tonumber(ARGV[8]))
  if r then return {'limit', 'user_pending', r} end
  r = full(agent_user_pending, tonumber(ARGV[9]))
  if r then return {'limit', 'agent_user_pending', r} end
  local maxp = tonumber(ARGV[10])
  if maxp > 0 and tonumber(redis.call('GET', user_pushes) or '0') >= maxp then
    return {'limit', 'pushes_per_minute', 60000 - (now % 60000)}
  end
end
-- Every check passed: the audit events are the first write, so a failure
-- to write them leaves nothing else written.
audit_write(audit, audit_head, a)
mandate_charge(mandate, mandate_taken, ARGV[16], tonumber(ARGV[17]), tonumber(ARGV[18]), ARGV[19])
if state == 'pending' then
  redis.call('INCR', user_pushes); redis.call('EXPIRE', user_pushes, 120)
  redis.call('ZADD', user_pending, exp_ms, id)
  redis.call('ZADD', agent_user_pending, exp_ms, id)
  redis.call('ZADD', expiries, exp_ms, id)
end
-- One HSET, with the approval when there is one.
local fields = {'rec', ARGV[1], 'state', state, 'exp', exp_ms, 'interval', ARGV[5], 'next', 0, 'client', client, 'user', user}
if state == 'approved' then fields[#fields + 1] = 'approval'; fields[#fields + 1] = ARGV[6] end
redis.call('HSET', req, unpack(fields))
if state == 'approved' then
  approve_counters(agent_user_counters, user_counters, agent_counters, r_now, hour, tonumber(ARGV[7]))
  grant(user_grants, grant_key, ARGV[24], ARGV[14], ARGV[15], now)
end
-- The agent's notification of an approval, or the push to the user's
-- devices of a pending request: durable with the request itself.
outbox(outbox_key, ARGV[12])
redis.call('PEXPIRE', req, ARGV[13])
return {'ok'}
