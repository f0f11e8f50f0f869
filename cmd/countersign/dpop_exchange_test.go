package main

import (
	"net/url"
	"testing"
	"time"
)

// exchangeForm is an RFC 8693 exchange of subject.
func exchangeForm(subject string) url.Values {
	return url.Values{"grant_type": {exchangeGrant}, "subject_token": {subject}, "subject_token_type": {accessTokenType}}
}

func TestDPoPBoundSubjectTokenExchange(t *testing.T) {
	tn := startNode(t, nil)
	setup(t, tn)
	subID, subSecret := tn.client(map[string]any{"client_id": "sub-agent", "grant_types": []string{exchangeGrant}})
	id, secret := tn.client(map[string]any{"client_id": "lead-agent", "delegates_to": []string{"sub-agent"}})
	lead := &dpopFlow{tn: tn, id: id, secret: secret}
	leadKey := newDPoPKey(t)
	bound := lead.redeem(lead.lowRisk(), leadKey)
	wantBound(t, tn, bound, leadKey)
	subject := bound.str("access_token")
	sub := &dpopFlow{tn: tn, id: subID, secret: subSecret}
	// Without a proof a bound subject token cannot be exchanged.
	wantError(t, tn.post("/token", subID, subSecret, exchangeForm(subject)), 400, "invalid_dpop_proof")
	// With a proof from the same key: still bound to that key.
	same := sub.post(exchangeForm(subject), sub.proof(leadKey, nil))
	if same.str("error") == "use_dpop_nonce" {
		same = sub.post(exchangeForm(subject), sub.proof(leadKey, nil))
	}
	at := wantBound(t, tn, same, leadKey)
	if at["client_id"] != "sub-agent" {
		t.Fatalf("exchanged claims: %v", at)
	}
	// With the sub-agent's own proof: bound to the sub-agent's key.
	own := newDPoPKey(t)
	r := sub.post(exchangeForm(subject), sub.proof(own, nil))
	if r.str("error") == "use_dpop_nonce" {
		r = sub.post(exchangeForm(subject), sub.proof(own, nil))
	}
	wantBound(t, tn, r, own)
	// Introspection shows the binding.
	rsID, rsSecret := tn.client(map[string]any{"client_id": "rs", "resource_server": true})
	in := tn.post("/introspect", rsID, rsSecret, url.Values{"token": {r.str("access_token")}})
	if in.Body["active"] != true || in.str("token_type") != "DPoP" || in.Body["cnf"].(map[string]any)["jkt"] != own.jkt {
		t.Fatalf("introspection: %s", in.Raw)
	}
}

func TestDPoPNoncesRotateAndAreRequired(t *testing.T) {
	tn := startNode(t, func(c *Config) { c.DPoPNonce = true })
	id, secret := setup(t, tn)
	f := &dpopFlow{tn: tn, id: id, secret: secret}
	k := newDPoPKey(t)
	authReqID := f.lowRisk()
	// No nonce yet: use_dpop_nonce with a DPoP-Nonce header.
	r := f.post(cibaForm(authReqID), f.proof(k, nil))
	wantError(t, r, 400, "use_dpop_nonce")
	first := r.Header.Get("DPoP-Nonce")
	if first == "" {
		t.Fatal("no DPoP-Nonce header")
	}
	wantBound(t, tn, f.post(cibaForm(authReqID), f.proof(k, nil)), k)
	// Two periods later the nonce is stale: a fresh one is issued.
	tn.clock.Advance(11 * time.Minute)
	authReqID = f.lowRisk()
	f.nonce = first
	r = f.post(cibaForm(authReqID), f.proof(k, nil))
	wantError(t, r, 400, "use_dpop_nonce")
	if n := r.Header.Get("DPoP-Nonce"); n == "" || n == first {
		t.Fatalf("nonce did not rotate: %q", n)
	}
	wantBound(t, tn, f.post(cibaForm(authReqID), f.proof(k, nil)), k)
}
