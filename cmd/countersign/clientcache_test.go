package main

import (
	"net/url"
	"testing"
	"time"
)

// A node caches client records for /token, /revoke and /introspect; a
// change made on another node reaches it through pub/sub at once.
func TestClientChangeReachesOtherNodesCache(t *testing.T) {
	a := startNode(t, nil)
	b := startNodeOn(t, a)
	id, secret := setup(t, a)
	tokenOn := func(tn *testNode) reply {
		r := tn.post("/bc-authorize", id, secret, url.Values{"scope": {"openid"}, "login_hint": {"alice"}, "authorization_details": {readDetails}})
		if r.Status != 200 {
			return r
		}
		return tn.post("/token", id, secret, cibaForm(r.str("auth_req_id")))
	}
	if r := tokenOn(b); r.Status != 200 { // b now holds the client in its cache
		t.Fatalf("token on b: %d %s", r.Status, r.Raw)
	}
	if r := a.admin("PATCH", "/admin/clients/"+id, map[string]any{"disabled": true}); r.Status != 200 {
		t.Fatalf("disable on a: %d %s", r.Status, r.Raw)
	}
	// On b, the disabled client is refused at /token within moments (not
	// after the cache's 5 s lifetime).
	deadline := time.Now().Add(2 * time.Second)
	for {
		r := b.post("/token", id, secret, cibaForm("0a"+"AAAAAAAAAAAAAAAAAAAAAA"))
		if r.Status == 401 && r.str("error") == "invalid_client" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("b still accepts the disabled client: %d %s", r.Status, r.Raw)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// And on the node that made the change, at once.
	wantError(t, a.post("/token", id, secret, cibaForm("0aAAAAAAAAAAAAAAAAAAAAAA")), 401, "invalid_client")
}
