-- poll: reads a request for the CIBA grant on behalf of a client,
-- enforcing the polling interval.
--
-- KEYS
--   1    req          {sNN}:req:<id>
-- ARGV
--   1    client       the polling client
--   2    now_ms       the caller's clock
-- RETURNS
--   {'missing'} | {'wrong_client'} | {'redeemed'} | {'expired'}
--   {'slow_down', interval}          polled too early: the new interval (s)
--   {'pending'} | {'denied'}
--   {'approved', rec, approval}
local req, client, now = KEYS[1], ARGV[1], tonumber(ARGV[2])
local st = redis.call('HMGET', req, 'state', 'client', 'exp', 'interval', 'next')
if not st[1] then return {'missing'} end
if st[2] ~= client then return {'wrong_client'} end
if st[1] == 'redeemed' then return {'redeemed'} end
if now >= tonumber(st[3]) or st[1] == 'expired' then return {'expired'} end
local interval = tonumber(st[4])
if now < tonumber(st[5]) then
  -- CIBA Core §11: slow_down adds 5 s for this and every later request.
  interval = interval + 5
  redis.call('HSET', req, 'interval', interval, 'next', now + interval * 1000)
  return {'slow_down', interval}
end
redis.call('HSET', req, 'next', now + interval * 1000)
if st[1] == 'pending' then return {'pending'} end
if st[1] == 'denied' then return {'denied'} end
local f = redis.call('HMGET', req, 'rec', 'approval')
return {'approved', f[1], f[2]}
