package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/countersign/countersign/ciba/store/redistest"
)

// TestOnRedisCluster runs the main flows on a three-master Redis Cluster:
// every script must stay in one slot, pipelines span nodes, and the outbox
// is read shard by shard.
func TestOnRedisCluster(t *testing.T) {
	addrs := redistest.Cluster(t)
	tn := startNode(t, func(c *Config) { c.RedisURL = "redis+cluster://" + strings.Join(addrs, ",") })
	id, secret := setup(t, tn)
	// Low risk by policy, token, introspection.
	r := tn.post("/bc-authorize", id, secret, url.Values{"scope": {"openid"}, "login_hint": {"alice@example.com"}, "authorization_details": {readDetails}})
	tok := tn.post("/token", id, secret, cibaForm(r.str("auth_req_id")))
	if tok.Status != 200 {
		t.Fatalf("token on the cluster: %d %s", tok.Status, tok.Raw)
	}
	rsID, rsSecret := tn.client(map[string]any{"client_id": "rs", "resource_server": true})
	if in := tn.post("/introspect", rsID, rsSecret, url.Values{"token": {tok.str("access_token")}}); in.Body["active"] != true {
		t.Fatalf("introspection: %s", in.Raw)
	}
	// High risk through the phone.
	ph := tn.enrollPhone("alice", "Phone")
	authReqID := tn.highRisk(id, secret, "Pay ACME")
	waitPush(t, ph, authReqID)
	if err := ph.Decide(context.Background(), authReqID, "approve"); err != nil {
		t.Fatal(err)
	}
	if r := tn.poll(id, secret, authReqID); r.Status != 200 {
		t.Fatalf("device token: %d %s", r.Status, r.Raw)
	}
	// A ping client is notified through the sharded outbox.
	ep := newAgentEndpoint(t)
	pid, psecret := tn.modeClient("pinger", "ping", ep.srv.URL+"/cb")
	pinged := tn.notified(ep, pid, psecret, "cluster-ping", readDetails)
	ep.waitFor(t, pinged, "cluster-ping")
	// Rules activation reaches the node through pub/sub on the cluster.
	if r := tn.admin("PUT", "/admin/rules", map[string]any{"ruleset": denyRules, "comment": "cluster"}); r.Status != 200 {
		t.Fatalf("activate: %d %s", r.Status, r.Raw)
	}
	waitRules(t, tn, "2")
	// The audit trail holds together across the shards.
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, out, _ := tn.cli("audit", "verify")
		if code == 0 && strings.HasPrefix(out, "OK: ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("audit verify on the cluster: %d %s", code, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if evs := tn.auditEvents(); len(evs) < 8 {
		t.Fatalf("only %d audit events", len(evs))
	}
}

// TestOnRedisSentinelFailover stops the master of a Sentinel-watched pair
// in the middle of a load of low-risk requests. While the Sentinels fail
// over, a request may be refused with 503 temporarily_unavailable (not
// acknowledged) and with nothing else; then the flows go on, on the
// promoted replica, and every auth_req_id acknowledged before or after the
// failover is still there: redeemable at /token, once.
func TestOnRedisSentinelFailover(t *testing.T) {
	s := redistest.Sentinel(t)
	tn := startNode(t, func(c *Config) {
		c.RedisURL = s.URL()
		// The load comes from one address: this test is not about the limits.
		c.RateLimitPerIP, c.RateLimitPerClient = 1<<30, 1<<30
	})
	id, secret := setup(t, tn)
	ep := newAgentEndpoint(t)
	pid, psecret := tn.modeClient("pinger", "ping", ep.srv.URL+"/cb")
	// The outbox's consumer group exists before the failover.
	ep.waitFor(t, tn.notified(ep, pid, psecret, "before-failover", readDetails), "before-failover")

	const workers, perPhase = 4, 40
	l := &failoverLoad{tn: tn, id: id, secret: secret, failed: make(chan struct{})}
	// Users taken in turn keep each agent-user pair far below the default
	// rules' request counts (many-requests, request-flood), however long
	// the master takes to stop.
	for u := 0; u < failoverUsers; u++ {
		tn.user(map[string]any{"id": fmt.Sprintf("load-%d", u)})
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() { defer wg.Done(); l.run(ctx, w) }()
	}
	// Before the node's own cleanup: no request outlives the test.
	t.Cleanup(func() { cancel(); wg.Wait() })
	finish := func() {
		cancel()
		wg.Wait()
		if err := l.err(); err != nil {
			t.Fatal(err)
		}
	}
	l.waitAcked(t, false, perPhase, finish)
	stopped := s.StopMaster()
	l.stopped.Store(true)
	if stopped != s.Master {
		finish()
		t.Fatalf("stopped %s, want the master %s", stopped, s.Master)
	}
	s.WaitMaster(s.Replica)
	l.waitAcked(t, true, perPhase, finish)
	finish()
	if l.refused == 0 {
		t.Fatalf("no request was refused while the master was away: the load did not span the failover")
	}
	t.Logf("acknowledged %d before the failover and %d after; %d refused during it", len(l.before), len(l.after), l.refused)

	// A whole poll flow and a ping flow on the new master.
	r := tn.post("/bc-authorize", id, secret, url.Values{"scope": {"openid"}, "login_hint": {"alice"}, "authorization_details": {readDetails}})
	if r.Status != 200 {
		t.Fatalf("bc-authorize after the failover: %d %s", r.Status, r.Raw)
	}
	tok := tn.post("/token", id, secret, cibaForm(r.str("auth_req_id")))
	if tok.Status != 200 || tok.str("token_type") != "Bearer" {
		t.Fatalf("token after the failover: %d %s", tok.Status, tok.Raw)
	}
	if at := tn.verify(tok.str("access_token"), "at+jwt"); at["sub"] != "alice" {
		t.Fatalf("access token after the failover: %v", at)
	}
	pinged := tn.notified(ep, pid, psecret, "after-failover", readDetails)
	ep.waitFor(t, pinged, "after-failover")
	if r := tn.post("/token", pid, psecret, cibaForm(pinged)); r.Status != 200 || r.str("access_token") == "" {
		t.Fatalf("token after the ping: %d %s", r.Status, r.Raw)
	}

	// Rules activation reaches the node through its pub/sub, resubscribed
	// on the new master.
	if r := tn.admin("PUT", "/admin/rules", map[string]any{"ruleset": denyRules, "comment": "after failover"}); r.Status != 200 {
		t.Fatalf("activate: %d %s", r.Status, r.Raw)
	}
	waitRules(t, tn, "2")

	// Nothing acknowledged was lost: each one is redeemed exactly once.
	for phase, ids := range map[string][]string{"before": l.before, "after": l.after} {
		for _, authReqID := range ids {
			r := tn.post("/token", id, secret, cibaForm(authReqID))
			if r.Status != 200 || r.str("access_token") == "" {
				t.Fatalf("auth_req_id acknowledged %s the failover is lost: %d %s", phase, r.Status, r.Raw)
			}
			wantError(t, tn.post("/token", id, secret, cibaForm(authReqID)), 400, "invalid_grant")
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, out, errOut := tn.cli("audit", "verify")
		if code == 0 && strings.HasPrefix(out, "OK: ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("audit verify after the failover: %d %s%s", code, out, errOut)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// failoverLoad is TestOnRedisSentinelFailover's load: workers sending
// low-risk bc-authorize requests and keeping every auth_req_id answered.
type failoverLoad struct {
	tn          *testNode
	id, secret  string
	stopped     atomic.Bool // the master has exited
	failed      chan struct{}
	mu          sync.Mutex
	before      []string // acknowledged before the master exited
	after       []string // acknowledged for a request sent after it had
	refused     int      // 503 temporarily_unavailable
	failure     error
	failureOnce sync.Once
}

// failoverUsers are the users the load asks for.
const failoverUsers = 40

// run sends requests, worker w's users in turn, until ctx ends or an
// answer is wrong.
func (l *failoverLoad) run(ctx context.Context, w int) {
	c := &http.Client{Timeout: patience}
	for i := w; ctx.Err() == nil; i++ {
		form := url.Values{"scope": {"openid"}, "login_hint": {fmt.Sprintf("load-%d", i%failoverUsers)}, "authorization_details": {readDetails}}
		after := l.stopped.Load()
		resp, err := c.Do(l.tn.form("/bc-authorize", l.id, l.secret, form))
		if err != nil {
			l.fail(fmt.Errorf("bc-authorize: no answer: %v", err))
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var body struct {
			AuthReqID string `json:"auth_req_id"`
			Interval  int    `json:"interval"`
			Error     string `json:"error"`
		}
		_ = json.Unmarshal(b, &body)
		switch {
		case resp.StatusCode == 200 && body.AuthReqID != "" && body.Interval == 1:
			l.mu.Lock()
			if after {
				l.after = append(l.after, body.AuthReqID)
			} else {
				l.before = append(l.before, body.AuthReqID)
			}
			l.mu.Unlock()
		case resp.StatusCode == 503 && body.Error == "temporarily_unavailable" && resp.Header.Get("Retry-After") != "" &&
			!strings.Contains(string(b), "127.0.0.1") && !strings.Contains(string(b), "sentinel"):
			l.mu.Lock()
			l.refused++
			l.mu.Unlock()
			time.Sleep(20 * time.Millisecond)
		default:
			l.fail(fmt.Errorf("bc-authorize (master stopped: %v): want 200 approved by policy or 503 temporarily_unavailable without detail, got %d %v %s",
				after, resp.StatusCode, resp.Header, b))
			return
		}
	}
}

func (l *failoverLoad) fail(err error) {
	l.failureOnce.Do(func() {
		l.mu.Lock()
		l.failure = err
		l.mu.Unlock()
		close(l.failed)
	})
}

func (l *failoverLoad) err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.failure
}

// waitAcked waits until n requests have been acknowledged in the phase
// (after: sent once the master had exited); on a wrong answer or after
// patience it calls finish and fails the test.
func (l *failoverLoad) waitAcked(t *testing.T, after bool, n int, finish func()) {
	t.Helper()
	deadline := time.After(patience)
	for {
		l.mu.Lock()
		got := len(l.before)
		if after {
			got = len(l.after)
		}
		l.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-l.failed:
			finish()
		case <-deadline:
			finish()
			t.Fatalf("only %d requests acknowledged (after the failover: %v) in %v", got, after, patience)
		case <-time.After(10 * time.Millisecond):
		}
	}
}
