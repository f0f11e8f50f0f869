package main

import (
	"context"
	"net/url"
	"strings"
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
