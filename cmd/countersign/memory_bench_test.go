package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/countersign/countersign/ciba/store"
)

// The memory benchmarks measure what requests leave in Redis: used_memory
// from INFO memory before and after (values, key names, the main and
// expires dicts; not the clients' buffers), and per key kind the MEMORY
// USAGE ... SAMPLES 0 of every key under the node's prefix, with ids
// replaced by * as bench/redis-key-kinds.py does. The test binary's
// redis-server holds other tests' keys too, but benchmarks run alone and
// only the differences count. Run them with -benchtime 1x (or 3x): each
// b.N iteration is a fixed batch of requests.

// memRequests is how many low-risk requests one iteration sends, and
// memUsers how many users they are spread over (the perf load spreads its
// requests over many users too, see bench/run-peer.sh). Each iteration
// has users of its own, so the per-user counters it creates count in
// every iteration alike, whatever b.N is.
const (
	memRequests = 2000
	memUsers    = 250
)

// memPending is how many requests one iteration leaves pending, all for
// one user with one phone (the node's caps lifted).
const memPending = 1000

// BenchmarkRedisBytesPerLowRiskRequest is the Redis memory one low-risk
// bc-authorize approved by policy leaves behind, audit included: whatever
// the requests added (the request hash, its audit event, its grant) and
// their share of what their users and agent hold (memRequests requests
// over memUsers fresh users per iteration), measured after a settle for
// the rate limiter's background sync. /token is not called: the request
// is measured as its poll client finds it.
func BenchmarkRedisBytesPerLowRiskRequest(b *testing.B) {
	tn := startNode(b, nil)
	bn := memPerfNode(b, tn)
	for u := 0; u < (b.N+1)*memUsers; u++ {
		if st, raw, err := bn.send("POST", "/admin/users", "application/json", "", "", nil,
			fmt.Sprintf(`{"id":"user-%d","attributes":{"spending_limit":1000,"timezone":"UTC"}}`, u), nil); err != nil || st != 201 {
			b.Fatalf("create user: %d %s %v", st, raw, err)
		}
	}
	authorize := func(user, seq int) {
		form := url.Values{"scope": {"openid"}, "login_hint": {"user-" + strconv.Itoa(user)},
			"binding_message": {"bench-" + strconv.Itoa(seq)}, "authorization_details": {readDetails}}
		var out struct {
			AuthReqID string `json:"auth_req_id"`
			Interval  *int   `json:"interval"`
		}
		st, raw, err := bn.send("POST", "/bc-authorize", formType, bn.id, bn.secret, nil, form.Encode(), &out)
		if err != nil || st != 200 || out.Interval == nil || *out.Interval != 1 || out.AuthReqID == "" {
			b.Fatalf("bc-authorize not approved by policy: %d %s %+v %v", st, raw, out, err)
		}
	}
	// Users 0..memUsers-1 warm up: the scripts loaded, the audit and
	// outbox streams of every shard created, the agent's counters made.
	for u := 0; u < memUsers; u++ {
		authorize(u, u)
	}
	rdb, prefix := tn.db.Redis(), tn.cfg.KeyPrefix
	settle(b, rdb, prefix)
	memBefore, keysBefore := redisUsedMemory(b, rdb), scanKeyKinds(b, rdb, prefix)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for k := 0; k < memRequests; k++ {
			authorize((i+1)*memUsers+k%memUsers, (i+1)*memRequests+k)
		}
	}
	b.StopTimer()
	settle(b, rdb, prefix)
	memAfter, keysAfter := redisUsedMemory(b, rdb), scanKeyKinds(b, rdb, prefix)
	reportRedisBytes(b, "request", b.N*memRequests, memBefore, memAfter, keysBefore, keysAfter)
}

// BenchmarkRedisBytesPerPendingRequest is the Redis memory of one request
// waiting on the user's phone: a high-risk payment for one user with one
// enrolled phone, the node's caps on pending requests and pushes lifted
// so that one user holds them all. Counted once the worker has pushed
// every request to the phone and deleted its outbox entry (the outbox
// streams are empty): the request hash, the pending indexes (per user,
// per agent and user, the shard's expiries), the audit event, and the
// counters. The warm-up leaves 200 requests pending first, so the indexes
// are past Redis's listpack size (zset-max-listpack-entries 128) and
// what is measured is the cost of one more entry in a large index; with
// the default caps (10 per user) an index never gets that large.
func BenchmarkRedisBytesPerPendingRequest(b *testing.B) {
	tn := startNode(b, func(c *Config) { c.MaxPendingPerUser, c.MaxPendingPerAgent, c.MaxPushesPerMinute = 0, 0, 0 })
	bn := memPerfNode(b, tn)
	tn.user(map[string]any{"id": "user-0", "attributes": map[string]any{"spending_limit": 1000, "timezone": "UTC"}})
	tn.enrollPhone("user-0", "Pixel")
	pending := func(seq int) {
		form := url.Values{"scope": {"openid"}, "login_hint": {"user-0"},
			"binding_message": {"Pay ACME " + strconv.Itoa(seq)}, "authorization_details": {bigPayment}}
		var out struct {
			AuthReqID string `json:"auth_req_id"`
			Interval  *int   `json:"interval"`
		}
		st, raw, err := bn.send("POST", "/bc-authorize", formType, bn.id, bn.secret, nil, form.Encode(), &out)
		if err != nil || st != 200 || out.Interval == nil || *out.Interval != 5 || out.AuthReqID == "" {
			b.Fatalf("bc-authorize not sent to the phone: %d %s %+v %v", st, raw, out, err)
		}
	}
	const warm = 200 // past zset-max-listpack-entries, see above
	for k := 0; k < warm; k++ {
		pending(k)
	}
	rdb, prefix := tn.db.Redis(), tn.cfg.KeyPrefix
	settle(b, rdb, prefix)
	memBefore, keysBefore := redisUsedMemory(b, rdb), scanKeyKinds(b, rdb, prefix)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for k := 0; k < memPending; k++ {
			pending(warm + i*memPending + k)
		}
	}
	b.StopTimer()
	settle(b, rdb, prefix)
	memAfter, keysAfter := redisUsedMemory(b, rdb), scanKeyKinds(b, rdb, prefix)
	reportRedisBytes(b, "pending", b.N*memPending, memBefore, memAfter, keysBefore, keysAfter)
}

// memPerfNode is tn with a keep-alive client and a standard poll agent.
func memPerfNode(b *testing.B, tn *testNode) *perfNode {
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.Cleanup(hc.CloseIdleConnections)
	bn := &perfNode{node: tn.node, tb: b, URL: tn.URL, clock: tn.clock, hc: hc, trips: &tripCounter{}}
	bn.id, bn.secret = bn.client(map[string]any{"client_id": "agent-1", "client_name": "Bench agent",
		"agent": map[string]any{"trust_tier": "standard", "owner": "acme"}})
	return bn
}

// settle waits until the worker has emptied every outbox stream of the
// node (a push is deleted from its stream once delivered), then a little
// longer: the rate limiter writes its counters every 100 ms.
func settle(b *testing.B, rdb redis.UniversalClient, prefix string) {
	ctx := context.Background()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var left int64
		for s := 0; s < store.Shards; s++ {
			n, err := rdb.XLen(ctx, fmt.Sprintf("%s{s%02d}:outbox", prefix, s)).Result()
			if err != nil {
				b.Fatal(err)
			}
			left += n
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d outbox entries still undelivered after 60 s", left)
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
}

// usedMemory is INFO memory's used_memory and, within it, the normal
// clients' buffers (which move with the connections, not the data).
type usedMemory struct{ total, clients int64 }

func redisUsedMemory(b *testing.B, rdb redis.UniversalClient) usedMemory {
	info, err := rdb.Info(context.Background(), "memory").Result()
	if err != nil {
		b.Fatal(err)
	}
	var m usedMemory
	for _, line := range strings.Split(info, "\r\n") {
		k, v, _ := strings.Cut(line, ":")
		n, _ := strconv.ParseInt(v, 10, 64)
		switch k {
		case "used_memory":
			m.total = n
		case "mem_clients_normal":
			m.clients = n
		}
	}
	if m.total == 0 {
		b.Fatalf("no used_memory in INFO memory: %q", info)
	}
	return m
}

// kindStats is what the keys of one kind hold.
type kindStats struct {
	typ            string
	keys, bytes    int64
	noTTL          int64
	minTTL, maxTTL time.Duration
}

var (
	shardTagRE = regexp.MustCompile(`\{s\d+\}`)
	userIDRE   = regexp.MustCompile(`user-\d+`)
	idRE       = regexp.MustCompile(`^(?:[A-Za-z0-9_.@-]{16,}|\d{6,})$`)
)

// keyKind is a key without the node's prefix, with its shard and ids
// (user names, request ids, time buckets) replaced as
// bench/redis-key-kinds.py replaces them.
func keyKind(prefix, key string) string {
	k := shardTagRE.ReplaceAllString(strings.TrimPrefix(key, prefix), "{sNN}")
	k = userIDRE.ReplaceAllString(k, "*")
	parts := strings.Split(k, ":")
	for i, p := range parts {
		if i > 0 && idRE.MatchString(p) {
			parts[i] = "*"
		}
	}
	return strings.Join(parts, ":")
}

// scanKeyKinds measures every key under prefix: MEMORY USAGE with
// SAMPLES 0 (every element rather than the default 5), its type and TTL.
func scanKeyKinds(b *testing.B, rdb redis.UniversalClient, prefix string) map[string]*kindStats {
	ctx := context.Background()
	kinds := map[string]*kindStats{}
	var cursor uint64
	for {
		keys, next, err := rdb.Scan(ctx, cursor, prefix+"*", 1000).Result()
		if err != nil {
			b.Fatal(err)
		}
		pipe := rdb.Pipeline()
		usage, ttl, typ := make([]*redis.IntCmd, len(keys)), make([]*redis.DurationCmd, len(keys)), make([]*redis.StatusCmd, len(keys))
		for i, k := range keys {
			usage[i], ttl[i], typ[i] = pipe.MemoryUsage(ctx, k, 0), pipe.PTTL(ctx, k), pipe.Type(ctx, k)
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			b.Fatal(err)
		}
		for i, k := range keys {
			n, err := usage[i].Result()
			if err != nil { // gone since SCAN saw it
				continue
			}
			kind := keyKind(prefix, k)
			s := kinds[kind]
			if s == nil {
				s = &kindStats{typ: typ[i].Val(), minTTL: -1}
				kinds[kind] = s
			}
			s.keys++
			s.bytes += n
			switch d := ttl[i].Val(); {
			case d < 0:
				s.noTTL++
			default:
				if s.minTTL < 0 || d < s.minTTL {
					s.minTTL = d
				}
				s.maxTTL = max(s.maxTTL, d)
			}
		}
		if cursor = next; cursor == 0 {
			return kinds
		}
	}
}

// reportRedisBytes reports used_memory's growth per request (redis-B/per;
// less the normal clients' buffers, which follow the connections the
// node and its worker happen to hold, not the data), the keys' own
// MEMORY USAGE growth (keys-B/per: without the expires dict's entries
// and the dicts' buckets), the same per key kind that changed, and the
// key-kind table in Markdown for bench/README.md. The testing package
// keeps 10 lines of a benchmark's log, so the log has the kinds that
// changed, largest first; COUNTERSIGN_MEM_TABLES names a file to which
// the whole table is appended, every key kind of the node included.
func reportRedisBytes(b *testing.B, per string, n int, m0, m1 usedMemory, k0, k1 map[string]*kindStats) {
	type row struct {
		kind     string
		s        *kindStats
		newKeys  int64
		perReq   float64
		keyBytes int64
	}
	var rows []row
	var sum float64
	for kind, s := range k1 {
		r := row{kind: kind, s: s, newKeys: s.keys, keyBytes: s.bytes}
		if s0 := k0[kind]; s0 != nil {
			r.newKeys, r.keyBytes = s.keys-s0.keys, s.bytes-s0.bytes
		}
		r.perReq = float64(r.keyBytes) / float64(n)
		sum += r.perReq
		rows = append(rows, r)
	}
	for kind, s0 := range k0 {
		if k1[kind] == nil {
			rows = append(rows, row{kind: kind, s: &kindStats{typ: s0.typ}, newKeys: -s0.keys, keyBytes: -s0.bytes, perReq: -float64(s0.bytes) / float64(n)})
			sum -= float64(s0.bytes) / float64(n)
		}
	}
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].perReq != rows[j].perReq {
			return rows[i].perReq > rows[j].perReq
		}
		return rows[i].kind < rows[j].kind
	})
	grown := (m1.total - m1.clients) - (m0.total - m0.clients)
	b.ReportMetric(float64(grown)/float64(n), "redis-B/"+per)
	b.ReportMetric(sum, "keys-B/"+per)
	head := fmt.Sprintf("%d requests; used_memory %+d B, %+d B without the normal clients' buffers: %.0f B/%s; the keys' MEMORY USAGE %.0f B/%s\n",
		n, m1.total-m0.total, grown, float64(grown)/float64(n), per, sum, per)
	head += fmt.Sprintf("| key kind | type | keys | new keys per %s | bytes per key | bytes per %s | TTL |\n| --- | --- | --- | --- | --- | --- | --- |\n", per, per)
	var changed, all strings.Builder
	for _, r := range rows {
		var mean int64
		if r.s.keys > 0 {
			mean = r.s.bytes / r.s.keys
		}
		line := fmt.Sprintf("| `%s` | %s | %d | %.3f | %d | %.1f | %s |\n", r.kind, r.s.typ, r.s.keys,
			float64(r.newKeys)/float64(n), mean, r.perReq, ttlRange(r.s))
		all.WriteString(line)
		if r.keyBytes != 0 {
			changed.WriteString(line)
			if r.perReq >= 1 || r.perReq <= -1 {
				b.ReportMetric(r.perReq, metricName(r.kind)+"-B/"+per)
			}
		}
	}
	b.Logf("Redis memory per %s: %s%s", per, head, changed.String())
	if path := os.Getenv("COUNTERSIGN_MEM_TABLES"); path != "" {
		f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err == nil {
			_, err = fmt.Fprintf(f, "### %s, b.N = %d\n\n%s%s\n", b.Name(), b.N, strings.Replace(head, "\n", "\n\n", 1), all.String())
			err = errors.Join(err, f.Close())
		}
		if err != nil {
			b.Fatal(err)
		}
	}
}

// metricName is a key kind as a short benchmark unit: no shard, no ids.
func metricName(kind string) string {
	var parts []string
	for _, p := range strings.Split(kind, ":") {
		if p != "*" && p != "{sNN}" && p != "{dir}" {
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, ":")
}

// ttlRange says which TTLs the keys of a kind have; "none" is a key that
// Redis never collects.
func ttlRange(s *kindStats) string {
	if s.keys == 0 {
		return "–"
	}
	if s.noTTL == s.keys {
		return "none"
	}
	r := s.minTTL.Round(time.Second).String()
	if s.maxTTL.Round(time.Second) != s.minTTL.Round(time.Second) {
		r += "–" + s.maxTTL.Round(time.Second).String()
	}
	if s.noTTL > 0 {
		r += fmt.Sprintf(", none on %d", s.noTTL)
	}
	return r
}
