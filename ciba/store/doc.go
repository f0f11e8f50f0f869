// Package store holds ALL of Countersign's Redis state: the key schema,
// the Lua scripts that make every transition atomic, the audit streams,
// the notification outbox and pub/sub. It imports nothing of ours; its
// methods are use cases (CreateRequest, Poll, Redeem, Decide,
// ReadSignals), each one script or one pipeline, returning outcomes that
// package ciba maps to OAuth codes.
//
// # Keys
//
// Every key starts with the configured prefix (default "cs:"). Per-user
// state is spread over 16 shards by hash tag, shard = SHA-256(user)[0]
// mod 16, so that a request, its user's indexes and counters, the audit
// chain and the outbox that one transition touches are all in one Redis
// Cluster slot:
//
//	{sNN}:req:<id>                    hash: rec (JSON), state, exp, interval, next, approval, client, user
//	{sNN}:pending:<user>              zset of pending request ids by expiry (push-bombing caps, device list)
//	{sNN}:pending-au:<client>:<user>  the same per agent and user
//	{sNN}:expiries                    zset of pending ids by expiry (the expiry sweeper)
//	{sNN}:c:au:<client>:<user>        hash, the agent-user counters: r:<5m> approvals per 5-minute bucket, d:<h> denials
//	                                  and s:<h> approved spend per hour, approved (approvals ever: first_time);
//	                                  TTL 400 days from the last approval, at least 25 h from the last denial
//	{sNN}:c:u:<user>                  hash, the user's approved spend per hour s:<h> (TTL 25 h)
//	{sNN}:c:p:<user>:<minute>         the user's pushes in that minute (TTL 2 min; apart from c:u:, so no
//	                                  user id can name another user's key of another type)
//	{sNN}:c:a:<client>                hash, this shard's share of the agent's approvals per 5-minute bucket r:<5m>
//	                                  (TTL 65 min; agent_requests_1h sums the shards)
//	{sNN}:audit, {sNN}:audit-head     the shard's audit stream and its hash-chain head
//	{sNN}:outbox                      the shard's notification outbox (stream, consumer group)
//	{dir}:client:<id>, {dir}:clients  clients (JSON) and their index
//	{dir}:user:<id>, {dir}:users, {dir}:user-email:<email>
//	{dir}:device:<id>, {dir}:devices:<user>, {dir}:enroll:<sha256(code)>
//	{dir}:singleton:<name>            signing keys, VAPID keys
//	{dir}:audit, {dir}:audit-head     the directory's audit chain (rule changes, clients, users, devices)
//	{dir}:clients-changed             pub/sub: a client id on every client change (node caches drop it)
//	{dir}:lock:<name>                 one node at a time: key rotation, audit retention
//	{dir}:rules:...                   ruleset versions and the active pointer (see rulesets.go)
//	once:<kind>:<jti>                 single-use JWT ids until they expire
//
// The counter hashes are numbered by bucket (Unix time / 300 or / 3600):
// the hour windows read the last 12 five-minute buckets (55 to 60 minutes
// of history), the day windows the last 24 hour buckets (23 to 24 hours),
// with one HMGET per hash. A write adds to its bucket's field and sets one
// TTL, that of the hash's longest-lived field; the fields no window reads
// any more (r 13 or more buckets old, d and s 25 or more hours) are
// dropped by the writes once a hash holds more than 48 fields (see
// lua/lib/request.lua).
//
// Upgrading from the string counters of earlier versions
// ({sNN}:c:au:<client>:<user>:r:<5m>, …:approved, …:s:<h>, …:d:<h>,
// {sNN}:c:u:<user>:s:<h>, {sNN}:c:a:<client>:r:<5m>): they are simply no
// longer read. The velocity signals under-report for up to 24 hours after
// the upgrade, and first_time holds again for every agent and user until
// their next approval. Redis expires the old keys by their TTLs (the
// …:approved ones only after 400 days).
//
// A request id carries its shard in its first two hex characters, so the
// id alone finds its slot. Redis TTLs only collect garbage: expiry is
// decided on every read from the "exp" field and the caller's clock
// (now_ms is a script argument), never from TTL.
//
// # Audit and outbox under Redis Cluster
//
// A script may only touch one slot, so the audit stream and the outbox
// are sharded by the same hash tag as the state they record: one audit
// hash chain per shard (plus one for the directory), one outbox stream
// per shard. Every transition script writes its state change, its audit
// events and its outbox entry together: there is no event without its
// change and no change without its event, by construction.
//
// Within a script every check (state, expiry, limits, the chain head)
// runs before the first write, and the audit events are that first
// write: Redis does not roll a script back, so if writing the events
// fails nothing else has been written, and once they are written the
// remaining writes touch only keys of our own types. A test corrupts
// the audit stream and shows that the transition then changes nothing.
//
// Each event holds the SHA-256 of its predecessor in the shard's chain
// (prev_hash) and its own hash over its JSON body. Lua in Redis has no
// SHA-256, so the writer computes the hashes in Go from the head it
// believes current and the script checks that head first: if another
// node moved it, the script changes nothing and returns the new head, and
// the writer retries (compare-and-set). Each node caches the heads.
//
// # Scripts
//
// Every script is a file in lua/, embedded in the binary: at its top a
// table of its KEYS (index, name, key), its ARGV (index, name, meaning)
// and its return values, then the script, which names its keys and
// arguments in locals before using them. The helpers it shares with
// others (the audit chain in lua/lib/audit.lua, the request counters and
// indexes in lua/lib/request.lua) take what they need as arguments; the
// script's "-- include:" line names them and they are prepended when the
// script is loaded. Each Go caller declares the names of the KEYS and
// ARGV it passes next to the call (newLua, newAudited); a test compares
// them with the file's table, and every call is refused when its counts
// differ from the declaration. Scripts run with EVALSHA, falling back to
// EVAL when Redis does not know them yet.
//
// To run a script by hand for debugging, prepend the libraries of its
// include line and pass keys and arguments as its table lists them, the
// audit arguments last (expected head, count, then hash and body per
// event):
//
//	cd ciba/store/lua
//	redis-cli --eval poll.lua 'cs:{s03}:req:03…' , my-client 1767225600000
//	cat lib/audit.lua redeem.lua > /tmp/redeem.lua
//	redis-cli --eval /tmp/redeem.lua 'cs:{s03}:req:03…' 'cs:{s03}:audit' 'cs:{s03}:audit-head' , 1767225600000 '' 0
//
// What it deliberately does not do: know OAuth error codes, HTTP, rules
// or tokens. Records are serialised JSON, never Go objects kept in
// memory.
package store
