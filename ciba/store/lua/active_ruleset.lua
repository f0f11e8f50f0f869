-- active_ruleset: reads the active version with its metadata, source and
-- activation atomically.
--
-- KEYS
--   1    active       {dir}:rules:active
--   2    meta         {dir}:rules:meta
--   3    src          {dir}:rules:src
--   4    activated    {dir}:rules:activated
-- ARGV
--   (none)
-- RETURNS
--   {version, meta, src, activation}
--   {}                 no version was ever activated
local v = redis.call('GET', KEYS[1])
if not v then return {} end
return {v, redis.call('HGET', KEYS[2], v) or '', redis.call('HGET', KEYS[3], v) or '', redis.call('HGET', KEYS[4], v) or ''}
