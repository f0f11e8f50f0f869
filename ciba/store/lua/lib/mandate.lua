-- lib/mandate: intent mandates, created by the decision that approves
-- them and charged by the requests made within them (create_request,
-- decide). The mandate hash holds rec (its JSON), client, user, until
-- (ms), budget (cents, -1: none), max_uses (0: unlimited), spent (cents),
-- uses and, once revoked, revoked_at (ms).

-- mandate_create stores a mandate with the approval of its request; its
-- keys live until ttl_ms (garbage only: expiry is checked on every read).
local function mandate_create(mandate, user_mandates, rec, until_ms, budget, max_uses, ttl_ms)
  if rec == '' then return end
  local m = cjson.decode(rec)
  redis.call('HSET', mandate, 'rec', rec, 'client', m['client_id'], 'user', m['user_id'],
    'until', until_ms, 'budget', budget, 'max_uses', max_uses, 'spent', 0, 'uses', 0)
  redis.call('PEXPIRE', mandate, ttl_ms)
  redis.call('SADD', user_mandates, m['id'])
  if redis.call('PTTL', user_mandates) < tonumber(ttl_ms) then redis.call('PEXPIRE', user_mandates, ttl_ms) end
end

-- mandate_refused re-checks a charge before anything is written: false
-- when the mandate (of this client and user, unrevoked, before its end)
-- still allows amount cents and uses more, otherwise why not.
local function mandate_refused(mandate, id, client, user, now, amount, uses)
  if id == '' then return false end
  local f = redis.call('HMGET', mandate, 'client', 'user', 'until', 'budget', 'max_uses', 'spent', 'uses', 'revoked_at')
  if not f[1] or f[1] ~= client or f[2] ~= user then return 'missing' end
  if f[8] then return 'revoked' end
  if now >= tonumber(f[3]) then return 'expired' end
  local budget = tonumber(f[4])
  if budget >= 0 and tonumber(f[6]) + amount > budget then return 'budget' end
  local max_uses = tonumber(f[5])
  if max_uses > 0 and tonumber(f[7]) + uses > max_uses then return 'uses' end
  return false
end

-- mandate_charge takes what a request spends and notes it as taken.
local function mandate_charge(mandate, taken, id, amount, uses, entry)
  if id == '' then return end
  redis.call('HINCRBY', mandate, 'spent', amount)
  redis.call('HINCRBY', mandate, 'uses', uses)
  redis.call('RPUSH', taken, entry)
  redis.call('PEXPIRE', taken, redis.call('PTTL', mandate))
end
