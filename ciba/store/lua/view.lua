-- view: reads a request as the device and the admin see it.
--
-- KEYS
--   1    req          {sNN}:req:<id>
-- ARGV
--   (none)
-- RETURNS
--   {rec, state, exp_ms, approval}   approval '' when none
--   {''}                             no such request
local f = redis.call('HMGET', KEYS[1], 'rec', 'state', 'exp', 'approval')
if not f[1] then return {''} end
return {f[1], f[2], f[3], f[4] or ''}
