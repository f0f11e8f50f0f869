-- lib/request: the counter and index updates shared by the request
-- scripts (create_request, decide, expire).

-- The counters are hashes of bucket fields (see doc.go): r:<5m> (a
-- five-minute bucket), d:<hour>, s:<hour> and approved. A window reads
-- only its own buckets, so a field left behind by every window is
-- garbage, which the hash's TTL does not collect while the hash is
-- written: counters_trim does, once a hash holds more than counters_max
-- fields. r_now and hour are the current buckets, computed in Go.
local counters_max = 48

-- counters_trim drops the r fields 13 or more buckets old (the hour
-- windows read 12) and the d and s fields 25 or more hours old (the day
-- windows read 24): one bucket to spare for a node whose clock lags.
local function counters_trim(key, r_now, hour)
  if redis.call('HLEN', key) <= counters_max then return end
  local r_old, h_old = tonumber(r_now) - 13, tonumber(hour) - 25
  local old = {}
  for _, f in ipairs(redis.call('HKEYS', key)) do
    local kind, b = string.match(f, '^([rds]):(%d+)$')
    if kind and tonumber(b) <= (kind == 'r' and r_old or h_old) then old[#old + 1] = f end
  end
  if #old > 0 then redis.call('HDEL', key, unpack(old)) end
end

-- approve_counters counts an approval: in the agent-user hash its
-- five-minute bucket, the approvals ever and the spend of the hour; in
-- the user hash the spend of the hour; in the agent hash of this shard
-- its five-minute bucket. Each hash gets one EXPIRE for its longest-lived
-- field: approved 400 days, s 25 h, r 65 min. The agent-user and agent
-- hashes are given theirs when a write adds a five-minute bucket, at most
-- once per bucket: 65 min from a bucket's first write still outlasts the
-- hour that reads it, and an r field is written by approvals only.
local function approve_counters(agent_user, user, agent, r_now, hour, amount)
  local r = 'r:' .. r_now
  local added = redis.call('HINCRBY', agent_user, r, 1) == 1
  redis.call('HINCRBY', agent_user, 'approved', 1)
  if amount > 0 then
    redis.call('HINCRBYFLOAT', agent_user, 's:' .. hour, amount)
    redis.call('HINCRBYFLOAT', user, 's:' .. hour, amount); redis.call('EXPIRE', user, 90000)
    -- The user hash holds at most 25 live fields, so a sweep frees at
    -- least 24: checking its length on every spend stays cheap.
    counters_trim(user, r_now, hour)
  end
  -- The agent-user hash may hold 64 live fields (13 r, 25 d, 25 s,
  -- approved): it is checked only when a write adds a field, so that it
  -- is swept at most once per new bucket even then. The first approval
  -- of an hour always adds an r field, so this bounds the s fields too.
  if added then
    redis.call('EXPIRE', agent_user, 34560000)
    counters_trim(agent_user, r_now, hour)
  end
  if redis.call('HINCRBY', agent, r, 1) == 1 then
    redis.call('EXPIRE', agent, 3900)
    counters_trim(agent, r_now, hour)
  end
end

-- deny_counters counts a denial in the agent-user hash's hour. The hash
-- must then live 25 h, but never less than it already does: it may hold
-- approved, kept 400 days.
local function deny_counters(agent_user, r_now, hour)
  if redis.call('HINCRBY', agent_user, 'd:' .. hour, 1) == 1 then counters_trim(agent_user, r_now, hour) end
  if redis.call('TTL', agent_user) < 90000 then redis.call('EXPIRE', agent_user, 90000) end
end

-- unpend drops a request id from the pending indexes and the expiries.
local function unpend(id, user_pending, agent_user_pending, expiries)
  redis.call('ZREM', user_pending, id); redis.call('ZREM', agent_user_pending, id); redis.call('ZREM', expiries, id)
end

-- outbox appends a notification entry ('' for none) to the shard outbox.
local function outbox(outbox_key, entry)
  if entry ~= '' then redis.call('XADD', outbox_key, '*', 'n', entry) end
end

-- grant stores a grant record ('' for none) and indexes its id for its
-- user. exp_ms is on the caller's clock; Redis TTLs are relative to now_ms
-- so a skewed clock cannot expire the grant early. Readers of the index
-- skip expired ids; one write in eight (by the random id's first
-- character) sweeps them, so the index stays within a small multiple of
-- its live grants at an eighth of the cost. The index's TTL only grows:
-- PEXPIRE GT, and a plain PEXPIRE for an index that has none yet.
local function grant(user_grants, grant_key, id, rec, exp_ms, now_ms)
  if rec == '' then return end
  local ttl = tonumber(exp_ms) - tonumber(now_ms)
  if ttl < 1000 then ttl = 1000 end
  redis.call('SET', grant_key, rec, 'PX', ttl)
  if string.byte(id, 1) % 8 == 0 then redis.call('ZREMRANGEBYSCORE', user_grants, '-inf', now_ms) end
  if redis.call('ZADD', user_grants, exp_ms, id) == 1 and redis.call('PEXPIRE', user_grants, ttl, 'GT') == 0
      and redis.call('PTTL', user_grants) == -1 then
    redis.call('PEXPIRE', user_grants, ttl)
  end
end
