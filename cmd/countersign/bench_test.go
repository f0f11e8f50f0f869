package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/countersign/countersign/ciba/dpop"
)

// The benchmarks drive whole nodes through their real HTTP handlers on a
// real redis-server (the test binary's own, see redistest). Client-side
// costs (building the form, decoding the JSON reply) run in the same
// process, so allocs/op counts client and server together. See
// bench/README.md for the numbers and how they were taken.

// benchUsers is how many users the load is spread over: the default
// ruleset scores more than 200 requests an hour by one agent for one user
// (and sends 500 to the phone), and the node's clock is frozen, so every
// request of a run falls in the same hour.
const benchUsers = 256

// perfNode is a server node for benchmarks (started by startNode), with
// its own keep-alive HTTP client and a counter of Redis round trips.
type perfNode struct {
	*node
	tb          testing.TB
	URL         string
	clock       *clock
	hc          *http.Client
	trips       *tripCounter
	id, secret  string // a standard poll agent
	rsID, rsSec string // a resource server
}

// startPerfNode starts a node like the tests do (startNode), counts its
// Redis round trips, and registers an agent, a resource server and
// benchUsers users through the admin API.
func startPerfNode(tb testing.TB) *perfNode {
	tb.Helper()
	tn := startNode(tb, nil)
	tc := &tripCounter{}
	tn.db.Redis().AddHook(tc)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	tb.Cleanup(hc.CloseIdleConnections)
	bn := &perfNode{node: tn.node, tb: tb, URL: tn.URL, clock: tn.clock, hc: hc, trips: tc}
	bn.id, bn.secret = bn.client(map[string]any{"client_id": "agent-1", "client_name": "Bench agent",
		"agent": map[string]any{"trust_tier": "standard", "owner": "acme"}})
	bn.rsID, bn.rsSec = bn.client(map[string]any{"client_id": "rs", "resource_server": true})
	for i := 0; i < benchUsers; i++ {
		if st, raw, err := bn.send("POST", "/admin/users", "application/json", "", "", nil,
			fmt.Sprintf(`{"id":"user-%d","attributes":{"spending_limit":1000,"timezone":"UTC"}}`, i), nil); err != nil || st != 201 {
			tb.Fatalf("create user: %d %s %v", st, raw, err)
		}
	}
	return bn
}

// send makes one request and decodes a JSON reply into out (when not nil);
// it returns the status and, on a status >= 300, the raw body. It only
// returns errors (no Fatal), so RunParallel's goroutines may call it.
func (bn *perfNode) send(method, path, ctype, id, secret string, hdr http.Header, body string, out any) (int, string, error) {
	req, err := http.NewRequest(method, bn.URL+path, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", ctype)
	for k, v := range hdr {
		req.Header[k] = v
	}
	if id != "" {
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	} else if strings.HasPrefix(path, "/admin/") {
		req.Header.Set("Authorization", "Bearer "+testAdminToken)
	}
	resp, err := bn.hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 || out == nil {
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}
	return resp.StatusCode, "", json.NewDecoder(resp.Body).Decode(out)
}

func (bn *perfNode) client(meta map[string]any) (string, string) {
	b, _ := json.Marshal(meta)
	var out struct {
		ID     string `json:"client_id"`
		Secret string `json:"client_secret"`
	}
	if st, raw, err := bn.send("POST", "/admin/clients", "application/json", "", "", nil, string(b), &out); err != nil || st != 201 {
		bn.tb.Fatalf("create client: %d %s %v", st, raw, err)
	}
	return out.ID, out.Secret
}

const formType = "application/x-www-form-urlencoded"

// tryAuthorize sends a low-risk bc-authorize for user-(i mod benchUsers)
// and returns its auth_req_id; policy must approve it at once (interval 1).
func (bn *perfNode) tryAuthorize(i int) (string, error) {
	form := url.Values{"scope": {"openid"}, "login_hint": {"user-" + strconv.Itoa(i%benchUsers)}, "authorization_details": {readDetails}}
	var out struct {
		AuthReqID string `json:"auth_req_id"`
		Interval  *int   `json:"interval"`
	}
	st, raw, err := bn.send("POST", "/bc-authorize", formType, bn.id, bn.secret, nil, form.Encode(), &out)
	switch {
	case err != nil:
		return "", err
	case st != 200:
		return "", fmt.Errorf("bc-authorize: %d %s", st, raw)
	case out.Interval == nil || *out.Interval != 1 || out.AuthReqID == "":
		return "", fmt.Errorf("bc-authorize: not approved by policy: %+v", out)
	}
	return out.AuthReqID, nil
}

func (bn *perfNode) authorize(i int) string {
	id, err := bn.tryAuthorize(i)
	if err != nil {
		bn.tb.Fatal(err)
	}
	return id
}

// tokenReply is the part of a token response the benchmarks check.
type tokenReply struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	IDToken     string `json:"id_token"`
}

// tryRedeem calls /token for authReqID with the given DPoP proof ("" for
// a Bearer token) and checks the token type.
func (bn *perfNode) tryRedeem(authReqID, proof string) (tokenReply, error) {
	var hdr http.Header
	want := "Bearer"
	if proof != "" {
		hdr, want = http.Header{"Dpop": {proof}}, "DPoP"
	}
	var out tokenReply
	st, raw, err := bn.send("POST", "/token", formType, bn.id, bn.secret, hdr, cibaForm(authReqID).Encode(), &out)
	switch {
	case err != nil:
		return out, err
	case st != 200:
		return out, fmt.Errorf("token: %d %s", st, raw)
	case out.TokenType != want || out.AccessToken == "" || out.IDToken == "":
		return out, fmt.Errorf("token: %+v", out)
	}
	return out, nil
}

func (bn *perfNode) redeem(authReqID, proof string) tokenReply {
	out, err := bn.tryRedeem(authReqID, proof)
	if err != nil {
		bn.tb.Fatal(err)
	}
	return out
}

// tripCounter is a go-redis hook counting round trips to Redis: one per
// command sent alone, one per pipeline or transaction (a script that
// Redis does not know yet costs two: EVALSHA, then EVAL). While rec is set
// it also records what each round trip carried.
type tripCounter struct {
	n     atomic.Int64
	mu    sync.Mutex
	names []string
	rec   bool
}

func (c *tripCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *tripCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.note(cmdName(cmd))
		return next(ctx, cmd)
	}
}

func (c *tripCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		names := make([]string, len(cmds))
		for i, cmd := range cmds {
			names[i] = cmdName(cmd)
		}
		c.note("pipeline[" + strings.Join(names, " ") + "]")
		return next(ctx, cmds)
	}
}

func (c *tripCounter) note(name string) {
	c.n.Add(1)
	c.mu.Lock()
	if c.rec {
		c.names = append(c.names, name)
	}
	c.mu.Unlock()
}

// cmdName is the command's name, with the number of keys for scripts.
func cmdName(cmd redis.Cmder) string {
	name := cmd.Name()
	if a := cmd.Args(); (name == "evalsha" || name == "eval") && len(a) > 2 {
		return fmt.Sprintf("%s(%v keys)", name, a[2])
	}
	return name
}

// record returns the round trips that f made, by name.
func (c *tripCounter) record(f func()) []string {
	c.mu.Lock()
	c.rec, c.names = true, nil
	c.mu.Unlock()
	f()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rec = false
	return c.names
}

// reportTrips logs what one call of f sent to Redis, in order.
func reportTrips(b *testing.B, bn *perfNode, what string, f func()) {
	b.Helper()
	got := bn.trips.record(f)
	b.Logf("%s: %d Redis round trips: %s", what, len(got), strings.Join(got, ", "))
}

// BenchmarkLowRiskFlow is one whole low-risk CIBA flow: bc-authorize
// approved by policy, then /token (a Bearer access token and an ID token),
// on one connection at a time. rt-bc/op and rt-token/op are the Redis round
// trips of each endpoint (any background command in the window counts too).
func BenchmarkLowRiskFlow(b *testing.B) {
	bn := startPerfNode(b)
	for i := 0; i < 4; i++ { // load the scripts, warm the caches
		bn.redeem(bn.authorize(i), "")
	}
	var id string
	reportTrips(b, bn, "bc-authorize", func() { id = bn.authorize(5) })
	reportTrips(b, bn, "token", func() { bn.redeem(id, "") })
	var bcTrips, tokTrips int64
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := bn.trips.n.Load()
		id := bn.authorize(i)
		t1 := bn.trips.n.Load()
		bn.redeem(id, "")
		bcTrips += t1 - t0
		tokTrips += bn.trips.n.Load() - t1
	}
	b.ReportMetric(float64(bcTrips)/float64(b.N), "rt-bc/op")
	b.ReportMetric(float64(tokTrips)/float64(b.N), "rt-token/op")
}

// BenchmarkLowRiskFlowParallel is BenchmarkLowRiskFlow with 8×GOMAXPROCS
// flows in flight (16 on two cores, like cibaload -c 16): throughput
// rather than latency; ns/op is wall time per completed flow.
func BenchmarkLowRiskFlowParallel(b *testing.B) {
	bn := startPerfNode(b)
	bn.redeem(bn.authorize(0), "")
	var seq atomic.Int64
	b.SetParallelism(8)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id, err := bn.tryAuthorize(int(seq.Add(1)))
			if err == nil {
				_, err = bn.tryRedeem(id, "")
			}
			if err != nil {
				b.Error(err) // not Fatal: this is not the benchmark's goroutine
				return
			}
		}
	})
}

// BenchmarkIntrospect is a resource server introspecting a valid access
// token (RFC 7662), one request at a time.
func BenchmarkIntrospect(b *testing.B) {
	bn := startPerfNode(b)
	tok := bn.redeem(bn.authorize(0), "")
	form := url.Values{"token": {tok.AccessToken}}.Encode()
	var out struct {
		Active bool   `json:"active"`
		Sub    string `json:"sub"`
	}
	introspect := func() {
		out.Active = false
		if st, raw, err := bn.send("POST", "/introspect", formType, bn.rsID, bn.rsSec, nil, form, &out); err != nil || st != 200 || !out.Active || out.Sub != "user-0" {
			b.Fatalf("introspect: %d %s %+v %v", st, raw, out, err)
		}
	}
	introspect()
	reportTrips(b, bn, "introspect", introspect)
	t0 := bn.trips.n.Load()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		introspect()
	}
	b.StopTimer()
	b.ReportMetric(float64(bn.trips.n.Load()-t0)/float64(b.N), "rt/op")
}

// benchToken times /token alone: the b.N requests are approved (and, with
// DPoP, their proofs signed) before the timer starts.
func benchToken(b *testing.B, withDPoP bool) {
	bn := startPerfNode(b)
	var key *ecdsa.PrivateKey
	if withDPoP {
		var err error
		if key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			b.Fatal(err)
		}
	}
	proof := func() string {
		if key == nil {
			return ""
		}
		// RFC 9449 §4.2: a fresh jti per proof (Sign draws one), iat on the node's clock.
		p, err := dpop.Sign(key, dpop.Claims{HTM: "POST", HTU: bn.URL + "/token", IAT: bn.clock.Now()})
		if err != nil {
			b.Fatal(err)
		}
		return p
	}
	bn.redeem(bn.authorize(0), proof())
	id := bn.authorize(1)
	p := proof()
	reportTrips(b, bn, map[bool]string{true: "token with DPoP", false: "token"}[withDPoP], func() { bn.redeem(id, p) })
	ids, proofs := make([]string, b.N), make([]string, b.N)
	for i := range ids {
		ids[i], proofs[i] = bn.authorize(i+2), proof()
	}
	t0 := bn.trips.n.Load()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		bn.redeem(ids[i], proofs[i])
	}
	b.StopTimer()
	b.ReportMetric(float64(bn.trips.n.Load()-t0)/float64(b.N), "rt/op")
}

// BenchmarkTokenBearer is /token for an approved CIBA request without DPoP.
func BenchmarkTokenBearer(b *testing.B) { benchToken(b, false) }

// BenchmarkTokenDPoP is the same with a DPoP proof (RFC 9449): one ES256
// verification and one replay check more.
func BenchmarkTokenDPoP(b *testing.B) { benchToken(b, true) }
