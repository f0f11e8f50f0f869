package main

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/redis/go-redis/v9"

	"github.com/countersign/countersign/ciba"
	"github.com/countersign/countersign/ciba/dpop"
	"github.com/countersign/countersign/ciba/server"
	"github.com/countersign/countersign/ciba/store"
	"github.com/countersign/countersign/ciba/store/redistest"
	"github.com/countersign/countersign/ciba/token"
	"github.com/countersign/countersign/mobile-stub/phone"
	"github.com/countersign/countersign/notify"
)

// TestSignedRequestKeepsNumbersExactly: the numbers of authorization_details
// in a signed request object reach the token as the agent signed them, not
// rounded through float64.
func TestSignedRequestKeepsNumbersExactly(t *testing.T) {
	tn := startNode(t, nil)
	if r := tn.admin("PUT", "/admin/rules", map[string]any{"ruleset": denyRules, "comment": "policy approves payments"}); r.Status != 200 {
		t.Fatalf("activate: %d %s", r.Status, r.Raw)
	}
	waitRules(t, tn, "2")
	key := newAgentKey(t)
	id, secret := tn.client(map[string]any{"client_id": "ro-agent", "jwks": key.jwks(),
		"backchannel_authentication_request_signing_alg": "ES256"})
	tn.user(map[string]any{"id": "alice"})
	now := tn.clock.Now()
	for _, amount := range []string{"12.300000000000000000001", "0.1000000000000000055511151231257827"} {
		details := []any{map[string]any{"type": "payment_initiation", "amount": json.Number(amount), "currency": "EUR"}}
		ro := key.sign(t, jwt.MapClaims{"iss": id, "aud": tn.URL, "exp": now.Add(5 * time.Minute).Unix(), "iat": now.Unix(),
			"nbf": now.Unix(), "jti": store.NewID(), "scope": "openid", "login_hint": "alice", "authorization_details": details})
		r := tn.post("/bc-authorize", id, secret, url.Values{"request": {ro}})
		if r.Status != 200 {
			t.Fatalf("signed request: %d %s", r.Status, r.Raw)
		}
		tok := tn.post("/token", id, secret, cibaForm(r.str("auth_req_id")))
		if tok.Status != 200 {
			t.Fatalf("token: %d %s", tok.Status, tok.Raw)
		}
		tn.verify(tok.str("access_token"), "at+jwt")
		payload, err := base64.RawURLEncoding.DecodeString(strings.Split(tok.str("access_token"), ".")[1])
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(payload), `"amount":`+amount+`,`) && !strings.Contains(string(payload), `"amount":`+amount+`}`) {
			t.Fatalf("amount %s not carried exactly: %s", amount, payload)
		}
		if !strings.Contains(tok.Raw, `"amount":`+amount) {
			t.Fatalf("token response lost the amount %s: %s", amount, tok.Raw)
		}
	}
}

// TestBareServiceServesDiscoveryAndDPoPToken: a Service built by ciba.New
// and nothing else has working dependencies (a DPoP verifier among them):
// discovery and a DPoP-bound /token answer, no panic.
func TestBareServiceServesDiscoveryAndDPoPToken(t *testing.T) {
	tn := startNode(t, nil)
	id, secret := setup(t, tn)
	minter := &token.Minter{Issuer: tn.URL, Keys: tn.keys.Get, AccessTTL: 5 * time.Minute, IDTTL: 5 * time.Minute, Now: tn.clock.Now}
	bare := ciba.New(ciba.Config{Issuer: tn.URL}, tn.db, tn.engine, minter)
	h := server.New(server.Deps{Service: bare, Keys: tn.keys.Get})
	serve := func(req *http.Request) reply {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		r := reply{Status: rec.Code, Header: rec.Header(), Raw: rec.Body.String()}
		_ = json.Unmarshal(rec.Body.Bytes(), &r.Body)
		return r
	}
	disc := serve(httptest.NewRequest("GET", "/.well-known/openid-configuration", nil))
	if algs, _ := disc.Body["dpop_signing_alg_values_supported"].([]any); disc.Status != 200 || len(algs) == 0 {
		t.Fatalf("discovery: %d %s", disc.Status, disc.Raw)
	}
	r := tn.post("/bc-authorize", id, secret, url.Values{"scope": {"openid"}, "login_hint": {"alice"}, "authorization_details": {readDetails}})
	if r.Status != 200 {
		t.Fatalf("bc-authorize: %d %s", r.Status, r.Raw)
	}
	k := newDPoPKey(t)
	// The bare service runs on the wall clock.
	proof, err := dpop.Sign(k.priv, dpop.Claims{HTM: "POST", HTU: tn.URL + "/token", IAT: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("POST", "/token", strings.NewReader(cibaForm(r.str("auth_req_id")).Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	req.Header.Set("DPoP", proof)
	tok := serve(req)
	if tok.Status != 200 || tok.str("token_type") != "DPoP" {
		t.Fatalf("token: %d %s", tok.Status, tok.Raw)
	}
	if cnf, _ := tn.verify(tok.str("access_token"), "at+jwt")["cnf"].(map[string]any); cnf["jkt"] != k.jkt {
		t.Fatalf("cnf: %v", cnf)
	}
}

// TestTokensOfDisabledOrDeletedClientIntrospectInactive: a token whose
// client is disabled or deleted introspects active:false, on the node that
// made the change and on another node that had the client cached.
func TestTokensOfDisabledOrDeletedClientIntrospectInactive(t *testing.T) {
	a := startNode(t, nil)
	b := startPeer(t, a)
	id, secret := setup(t, a)
	rsID, rsSecret := a.client(map[string]any{"client_id": "rs", "resource_server": true})
	r := a.post("/bc-authorize", id, secret, url.Values{"scope": {"openid"}, "login_hint": {"alice"}, "authorization_details": {readDetails}})
	tok := a.post("/token", id, secret, cibaForm(r.str("auth_req_id")))
	if tok.Status != 200 {
		t.Fatalf("token: %d %s", tok.Status, tok.Raw)
	}
	active := func(tn *testNode) any {
		in := tn.post("/introspect", rsID, rsSecret, url.Values{"token": {tok.str("access_token")}})
		if in.Status != 200 {
			t.Fatalf("introspect: %d %s", in.Status, in.Raw)
		}
		return in.Body["active"]
	}
	eventually := func(tn *testNode, want bool, what string) {
		t.Helper()
		deadline := time.Now().Add(2 * time.Second)
		for active(tn) != want {
			if time.Now().After(deadline) {
				t.Fatalf("%s: active is not %v", what, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if active(a) != true || active(b) != true { // both nodes now cache the client
		t.Fatal("fresh token inactive")
	}
	if r := a.admin("PATCH", "/admin/clients/"+id, map[string]any{"disabled": true}); r.Status != 200 {
		t.Fatalf("disable: %d %s", r.Status, r.Raw)
	}
	if active(a) != false {
		t.Fatal("token of a disabled client active on the node that disabled it")
	}
	eventually(b, false, "disabled, other node")
	if r := a.admin("PATCH", "/admin/clients/"+id, map[string]any{"disabled": false}); r.Status != 200 {
		t.Fatalf("enable: %d %s", r.Status, r.Raw)
	}
	eventually(b, true, "enabled again")
	if r := a.admin("DELETE", "/admin/clients/"+id, nil); r.Status != 204 && r.Status != 200 {
		t.Fatalf("delete: %d %s", r.Status, r.Raw)
	}
	if active(a) != false {
		t.Fatal("token of a deleted client active")
	}
	eventually(b, false, "deleted, other node")
}

// startPeer starts another node of first's deployment: same Redis, same
// issuer (behind a load balancer), its own client cache and worker.
func startPeer(t *testing.T, first *testNode) *testNode {
	t.Helper()
	cfg := *first.cfg
	ctx, cancel := context.WithCancel(context.Background())
	n, err := newNode(ctx, &cfg, testLogger(t), io.Discard, first.clock.Now)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	srv := httptest.NewServer(n.handler)
	t.Cleanup(func() { srv.Close(); cancel(); n.close() })
	return &testNode{node: n, t: t, URL: srv.URL, clock: first.clock}
}

// TestDevicePushIsTakenOverFromADeadNode: the Web Push of a pending request
// is stored with it; when the node that read it dies before sending,
// another node sends it, and the phone (decrypting it as a browser would)
// gets the request and can approve it.
func TestDevicePushIsTakenOverFromADeadNode(t *testing.T) {
	a := startNode(t, nil)
	id, secret := setup(t, a)
	ph := a.enrollPhone("alice", "Pixel")
	a.stopWorker()
	ctx := context.Background()
	if err := a.db.EnsureOutboxGroups(ctx); err != nil {
		t.Fatal(err)
	}
	authReqID := a.highRisk(id, secret, "Pay ACME 25k")
	// A node read the push and died before sending it.
	msgs, err := a.db.ReadOutbox(ctx, "dead-node", 10, time.Second)
	if err != nil || len(msgs) != 1 || msgs[0].Outbox.RequestID != authReqID || msgs[0].Outbox.Kind != "device" {
		t.Fatalf("the push was not in the outbox: %+v %v", msgs, err)
	}
	b := startPeer(t, a)
	b.stopWorker()
	w := b.newWorker("rescuer", 200*time.Millisecond)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go w.Run(wctx)
	push := waitPush(t, ph, authReqID)
	if push.BindingMessage != "Pay ACME 25k" || push.Agent.ClientID != id || push.Type != "approval_request" || push.Urgency != "high" {
		t.Fatalf("push: %+v", push)
	}
	if err := ph.Decide(ctx, authReqID, "approve"); err != nil {
		t.Fatal(err)
	}
	if r := a.poll(id, secret, authReqID); r.Status != 200 {
		t.Fatalf("token after the taken-over push: %d %s", r.Status, r.Raw)
	}
}

// commandCalls sums the calls of a command across the servers (INFO
// commandstats).
func commandCalls(t *testing.T, addrs []string, cmd string) int64 {
	t.Helper()
	var total int64
	for _, addr := range addrs {
		c := redis.NewClient(&redis.Options{Addr: addr})
		info, err := c.Info(context.Background(), "commandstats").Result()
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(info, "\n") {
			if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_"+cmd+":calls="); ok {
				n, _ := strconv.ParseInt(strings.SplitN(rest, ",", 2)[0], 10, 64)
				total += n
			}
		}
	}
	return total
}

// processCPU is this process's user+system CPU time in clock ticks
// (/proc/self/stat fields 14 and 15).
func processCPU() int64 {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s
}

// TestIdleClusterNodeDoesNotSpin: on Redis Cluster an idle node's outbox
// worker waits for work instead of polling every shard in a loop. The
// bound is on commands counted over two idle seconds, not on time.
func TestIdleClusterNodeDoesNotSpin(t *testing.T) {
	addrs := redistest.Cluster(t)
	startNode(t, func(c *Config) { c.RedisURL = "redis+cluster://" + strings.Join(addrs, ",") })
	time.Sleep(500 * time.Millisecond) // let the node settle into idling
	calls, cpu := commandCalls(t, addrs, "xreadgroup"), processCPU()
	time.Sleep(2 * time.Second)
	calls, cpu = commandCalls(t, addrs, "xreadgroup")-calls, processCPU()-cpu
	t.Logf("idle for 2 s on the cluster: %d XREADGROUP, %d CPU ticks of the test process", calls, cpu)
	if calls >= 50 {
		t.Fatalf("an idle node sent %d XREADGROUP in 2 s", calls)
	}
}

// TestDevicePushRetriedThroughTheOutbox: a push service that fails for the
// moment (503) gets the push again from the outbox worker. The fake push
// service checks what it gets as a real one and the browser would: the
// VAPID JWT for its origin, and a body that decrypts (RFC 8291) with the
// subscription's keys to the approval request.
func TestDevicePushRetriedThroughTheOutbox(t *testing.T) {
	tn := startNode(t, nil)
	id, secret := setup(t, tn)
	ph := tn.enrollPhone("alice", "Pixel")
	ctx := context.Background()
	priv, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	auth := make([]byte, 16)
	_, _ = rand.Read(auth)
	var hits atomic.Int32
	got := make(chan ciba.PushPayload, 4)
	var endpoint string
	service := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if _, err := phone.VerifyVAPID(r.Header.Get("Authorization"), endpoint, time.Now()); err != nil {
			t.Errorf("VAPID: %v", err)
			w.WriteHeader(401)
			return
		}
		plain, err := phone.DecryptPush(body, priv, auth)
		var p ciba.PushPayload
		if err != nil || json.Unmarshal(plain, &p) != nil {
			t.Errorf("undecryptable push: %v", err)
			w.WriteHeader(400)
			return
		}
		if hits.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		got <- p
		w.WriteHeader(http.StatusCreated)
	}))
	defer service.Close()
	endpoint = service.URL + "/push/alice"
	enc := base64.RawURLEncoding.EncodeToString
	sub, _ := json.Marshal(map[string]any{"endpoint": endpoint, "keys": map[string]string{"p256dh": enc(priv.PublicKey().Bytes()), "auth": enc(auth)}})
	if err := tn.db.SetPushSubscription(ctx, ph.DeviceID(), sub); err != nil {
		t.Fatal(err)
	}
	tn.worker.Hooks(nil, func(ctx context.Context, d time.Duration) error { return ctx.Err() })
	authReqID := tn.highRisk(id, secret, "Pay ACME 25k")
	select {
	case p := <-got:
		if p.ID != authReqID || p.BindingMessage != "Pay ACME 25k" || p.Type != "approval_request" {
			t.Fatalf("push: %+v", p)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the push was not retried: %d hits", hits.Load())
	}
	if n := hits.Load(); n != 2 {
		t.Fatalf("push service hits: %d, want 2 (one refused, one delivered)", n)
	}
}

// TestRefusedRequestIsNotCounted: a request refused by the push-bombing
// cap is never stored, so neither the velocity signals nor the decision
// metrics count it.
func TestRefusedRequestIsNotCounted(t *testing.T) {
	tn := startNode(t, func(c *Config) { c.MaxPendingPerUser = 1 })
	id, secret := setup(t, tn)
	tn.highRisk(id, secret, "First")
	decisions := func() string {
		t.Helper()
		r := tn.do(mustReq(t, "GET", tn.URL+"/metrics", ""))
		var lines []string
		for _, l := range strings.Split(r.Raw, "\n") {
			if strings.HasPrefix(l, "countersign_decisions_total{") {
				lines = append(lines, l)
			}
		}
		return strings.Join(lines, "\n")
	}
	before := decisions()
	if !strings.Contains(before, `path="device"} 1`) {
		t.Fatalf("decision metrics after one request: %q", before)
	}
	sig := func() store.Signals {
		s, err := tn.db.ReadSignals(context.Background(), id, "alice", allSignalNames, tn.clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	signals := sig()
	r := tn.post("/bc-authorize", id, secret, url.Values{"scope": {"openid"}, "login_hint": {"alice"},
		"binding_message": {"Second"}, "authorization_details": {bigPayment}})
	wantError(t, r, 429, "slow_down")
	if after := decisions(); after != before {
		t.Fatalf("a refused request was counted:\n%s\nwas\n%s", after, before)
	}
	if after := sig(); after != signals {
		t.Fatalf("a refused request moved the signals: %+v, was %+v", after, signals)
	}
}

var allSignalNames = []string{store.SigAgentRequests1h, store.SigAgentUserRequests1h, store.SigUserPending,
	store.SigAgentUserDenials24h, store.SigUserSpend24h, store.SigAgentUserSpend24h, store.SigFirstTime}

// TestDelegatedTokenOfDisabledActorIntrospectsInactive: a token exchanged
// down a chain is inactive once any actor of the chain is disabled, not
// only its own client.
func TestDelegatedTokenOfDisabledActorIntrospectsInactive(t *testing.T) {
	tn := startNode(t, nil)
	c := newChain(t, tn)
	hop := c.exchange(c.booker, c.bookerS, c.token)
	if hop.Status != 200 {
		t.Fatalf("exchange: %d %s", hop.Status, hop.Raw)
	}
	if c.introspect(hop.str("access_token")).Body["active"] != true {
		t.Fatal("fresh delegated token inactive")
	}
	if r := tn.admin("PATCH", "/admin/clients/"+c.planner, map[string]any{"disabled": true}); r.Status != 200 {
		t.Fatalf("disable: %d %s", r.Status, r.Raw)
	}
	if in := c.introspect(hop.str("access_token")); in.Body["active"] != false {
		t.Fatalf("token acting for a disabled planner still active: %s", in.Raw)
	}
}

// groupRefuser sits at the Redis boundary and refuses the first XGROUP
// commands, as a Redis Cluster still forming answers CLUSTERDOWN.
type groupRefuser struct{ left atomic.Int32 }

func (g *groupRefuser) DialHook(next redis.DialHook) redis.DialHook { return next }

func (g *groupRefuser) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, c redis.Cmder) error {
		if c.Name() == "xgroup" && g.left.Add(-1) >= 0 {
			err := errors.New("CLUSTERDOWN The cluster is down")
			c.SetErr(err)
			return err
		}
		return next(ctx, c)
	}
}

func (g *groupRefuser) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// TestWorkerOutlivesRedisNotReadyAtStart: a worker whose Redis is not
// ready when it starts keeps trying, then delivers; it does not stop for
// good (device pushes and callbacks depend on it).
func TestWorkerOutlivesRedisNotReadyAtStart(t *testing.T) {
	tn := startNode(t, nil)
	setup(t, tn)
	ep := newAgentEndpoint(t)
	id, secret := tn.modeClient("pinger", "ping", ep.srv.URL+"/cb")
	tn.stopWorker()
	g := &groupRefuser{}
	g.left.Store(3)
	rdb := redis.NewClient(&redis.Options{Addr: strings.TrimPrefix(tn.cfg.RedisURL, "redis://")})
	rdb.AddHook(g)
	defer rdb.Close()
	db := store.Open(rdb, tn.cfg.KeyPrefix)
	db.Now = tn.clock.Now
	minter := &token.Minter{Issuer: tn.URL, Keys: tn.keys.Get, AccessTTL: 5 * time.Minute, IDTTL: 5 * time.Minute, Now: tn.clock.Now}
	svc := ciba.New(tn.service.Config(), db, tn.engine, minter, ciba.WithClock(tn.clock.Now),
		ciba.WithLogger(testLogger(t)))
	w := &ciba.Worker{Service: svc, Consumer: "late-starter",
		Callback: &notify.Callback{Client: notify.EndpointPolicy{AllowHTTP: true, AllowPrivate: true}.Client(5 * time.Second)}}
	w.Hooks(nil, func(ctx context.Context, d time.Duration) error { return ctx.Err() })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stopped := make(chan error, 1)
	go func() { stopped <- w.Run(ctx) }()
	req := tn.notified(ep, id, secret, "late-tok", readDetails)
	select {
	case err := <-stopped:
		t.Fatalf("the worker stopped: %v", err)
	default:
	}
	ep.waitFor(t, req, "late-tok")
	if g.left.Load() >= 0 {
		t.Fatalf("the refusals were not all used: %d left", g.left.Load())
	}
	cancel()
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
}
