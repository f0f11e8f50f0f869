-- lib/request: the counter and index updates shared by the request
-- scripts (create_request, decide, expire).

-- approve_counters counts an approval: the agent-user and agent request
-- buckets (5 min), the agent-user approvals ever, and the spends per hour.
local function approve_counters(agent_user_requests, agent_requests, agent_user_approvals, agent_user_spend, user_spend, amount)
  redis.call('INCR', agent_user_requests); redis.call('EXPIRE', agent_user_requests, 3900)
  redis.call('INCR', agent_requests); redis.call('EXPIRE', agent_requests, 3900)
  redis.call('INCR', agent_user_approvals); redis.call('EXPIRE', agent_user_approvals, 34560000)
  if amount > 0 then
    redis.call('INCRBYFLOAT', agent_user_spend, amount); redis.call('EXPIRE', agent_user_spend, 90000)
    redis.call('INCRBYFLOAT', user_spend, amount); redis.call('EXPIRE', user_spend, 90000)
  end
end

-- deny_counters counts a denial in the agent-user's hour.
local function deny_counters(agent_user_denials)
  redis.call('INCR', agent_user_denials); redis.call('EXPIRE', agent_user_denials, 90000)
end

-- unpend drops a request id from the pending indexes and the expiries.
local function unpend(id, user_pending, agent_user_pending, expiries)
  redis.call('ZREM', user_pending, id); redis.call('ZREM', agent_user_pending, id); redis.call('ZREM', expiries, id)
end

-- outbox appends a notification entry ('' for none) to the shard outbox.
local function outbox(outbox_key, entry)
  if entry ~= '' then redis.call('XADD', outbox_key, '*', 'n', entry) end
end

-- grant stores a grant record ('' for none) and indexes it for its user.
-- exp_ms is on the caller's clock; Redis TTLs are relative to now_ms so a
-- skewed clock cannot expire the grant early.
local function grant(user_grants, grant_key, rec, exp_ms, now_ms)
  if rec == '' then return end
  local ttl = tonumber(exp_ms) - tonumber(now_ms)
  if ttl < 1000 then ttl = 1000 end
  redis.call('SET', grant_key, rec, 'PX', ttl)
  redis.call('ZREMRANGEBYSCORE', user_grants, '-inf', now_ms)
  redis.call('ZADD', user_grants, exp_ms, cjson.decode(rec)['grant_id'])
  if redis.call('PTTL', user_grants) < ttl then redis.call('PEXPIRE', user_grants, ttl) end
end
