-- user_by_hint: resolves a login_hint that is a user id or an email.
--
-- KEYS
--   1    user_by_id       {dir}:user:<hint>
--   2    user_by_email    {dir}:user-email:<hint>
-- ARGV
--   1    user_prefix      {dir}:user: (the user key without its id)
--   2    devices_prefix   {dir}:devices: (the devices key without its user)
-- RETURNS
--   {user_json, devices}   devices: how many the user has
--   {'', 0}                no such user
local u = redis.call('GET', KEYS[1])
if not u then
  local id = redis.call('GET', KEYS[2])
  if not id then return {'', 0} end
  u = redis.call('GET', ARGV[1] .. id)
  if not u then return {'', 0} end
end
local id = cjson.decode(u)['id']
return {u, redis.call('SCARD', ARGV[2] .. id)}
