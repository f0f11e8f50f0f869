-- add_shadow_stats: adds one node's counts for a shadow ruleset; they are
-- dropped when that shadow is no longer the one set.
--
-- KEYS
--   1    shadow       {dir}:rules:shadow
--   2    stats        {dir}:rules:shadow-stats
-- ARGV
--   1    digest       the shadow the counts are for
--   2    total
--   3    changed
--   4..  moves...     move ("policy->device"), count pairs
-- RETURNS
--   1 added, 0 dropped
local shadow, stats, digest = KEYS[1], KEYS[2], ARGV[1]
if redis.call('HGET', shadow, 'digest') ~= digest then return 0 end
if redis.call('HGET', stats, 'digest') ~= digest then
  redis.call('DEL', stats)
  redis.call('HSET', stats, 'digest', digest)
end
redis.call('HINCRBY', stats, 'total', ARGV[2])
redis.call('HINCRBY', stats, 'changed', ARGV[3])
for i = 4, #ARGV, 2 do redis.call('HINCRBY', stats, 'm:' .. ARGV[i], ARGV[i+1]) end
return 1
