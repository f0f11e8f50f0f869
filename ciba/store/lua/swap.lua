-- swap: replaces a singleton's value when it still equals the old one.
--
-- KEYS
--   1    singleton    {dir}:singleton:<name>
-- ARGV
--   1    old          the value it must still hold
--   2    next         the new value
-- RETURNS
--   1 swapped, 0 when the value had changed
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
return 1
