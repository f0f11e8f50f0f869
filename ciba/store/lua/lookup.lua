-- lookup: what /bc-authorize reads first, the client and the user a
-- login_hint names (by id or email), in one step.
--
-- KEYS
--   1    client           {dir}:client:<client id>
--   2    user_by_id       {dir}:user:<hint>
--   3    user_by_email    {dir}:user-email:<hint>
-- ARGV
--   1    user_prefix      {dir}:user: (the user key without its id)
--   2    devices_prefix   {dir}:devices: (the devices key without its user)
--   3    hint             the login_hint (the user's id when found by id)
-- RETURNS
--   {client_json, user_json, devices}   '' for a missing client or user
local c = redis.call('GET', KEYS[1]) or ''
-- The user's id is the hint, or what the email index holds: the record
-- need not be decoded for it.
local id = ARGV[3]
local u = redis.call('GET', KEYS[2])
if not u then
  id = redis.call('GET', KEYS[3])
  if id then u = redis.call('GET', ARGV[1] .. id) end
end
if not u then return {c, '', 0} end
return {c, u, redis.call('SCARD', ARGV[2] .. id)}
