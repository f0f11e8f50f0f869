-- lib/audit: the audit hash chain, for every script that writes events.
-- The events' hashes are computed in Go from the head the writer believes
-- current; a script checks that head before any write (compare-and-set)
-- and writes the events first, so a stale head changes nothing.

-- audit_from returns the audit arguments that start at argv[first]: the
-- expected head, then n, then hash and body per event.
local function audit_from(argv, first)
  local a = {prev = argv[first], events = {}}
  for i = 1, tonumber(argv[first + 1]) do
    a.events[i] = {hash = argv[first + 2 * i], body = argv[first + 2 * i + 1]}
  end
  return a
end

-- audit_stale returns the current head when it is not the expected one.
local function audit_stale(head_key, a)
  local cur = redis.call('GET', head_key) or ''
  if cur ~= a.prev then return cur end
  return false
end

-- audit_write appends the events to the stream and moves the head. An
-- event's hash is the SHA-256 of its body, which readers recompute: only
-- the body is stored.
local function audit_write(stream_key, head_key, a)
  local last = a.prev
  for _, e in ipairs(a.events) do
    redis.call('XADD', stream_key, '*', 'e', e.body)
    last = e.hash
  end
  redis.call('SET', head_key, last)
end
