-- save_ruleset: stores a ruleset as the next version and activates it,
-- audited and announced.
-- include: audit
--
-- KEYS
--   1    seq            {dir}:rules:seq, the last version number
--   2    meta           {dir}:rules:meta, version -> metadata JSON
--   3    src            {dir}:rules:src, version -> source
--   4    activated      {dir}:rules:activated, version -> activation JSON
--   5    active         {dir}:rules:active, the active version
--   6    audit          {dir}:audit
--   7    audit_head     {dir}:audit-head
-- ARGV
--   1    version        the version expected (seq + 1)
--   2    only_if_none   '1': refuse when a version is active
--   3    meta
--   4    src
--   5    activation
--   6    channel        the rules channel
--   7    message        the message prefix (the version is appended)
--   8..  audit...       expected head, n, then hash and body per event
-- RETURNS
--   {'ok', version}
--   {'exists', active}  only_if_none and a version is active
--   {'seq', seq}        another writer took that version number: retry
--   {'stale', head}     the audit head moved: nothing written, retry
local seq_key, meta, src, activated, active = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local audit, audit_head = KEYS[6], KEYS[7]
local a = audit_from(ARGV, 8)
local stale = audit_stale(audit_head, a)
if stale then return {'stale', stale} end
if ARGV[2] == '1' then
  local cur = redis.call('GET', active)
  if cur then return {'exists', cur} end
end
local seq = tonumber(redis.call('GET', seq_key) or '0')
if seq + 1 ~= tonumber(ARGV[1]) then return {'seq', tostring(seq)} end
audit_write(audit, audit_head, a)
local v = tostring(redis.call('INCR', seq_key))
redis.call('HSET', meta, v, ARGV[3])
redis.call('HSET', src, v, ARGV[4])
redis.call('HSET', activated, v, ARGV[5])
redis.call('SET', active, v)
redis.call('PUBLISH', ARGV[6], ARGV[7] .. ' ' .. v)
return {'ok', v}
