package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/countersign/countersign/ciba"
)

// TestGoOIDCVerifiesTokens verifies ID and access tokens with
// github.com/coreos/go-oidc/v3 configured from the discovery document
// alone, as a relying party and a Go resource server would.
func TestGoOIDCVerifiesTokens(t *testing.T) {
	tn := startNode(t, nil)
	id, secret := setup(t, tn)
	ctx := context.Background()
	provider, err := oidc.NewProvider(ctx, tn.URL) // checks that the document names this issuer
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	idTokens := provider.Verifier(&oidc.Config{ClientID: id, Now: tn.clock.Now})
	// An access token's audience is the issuer unless its
	// authorization_details name locations (RFC 9068 §4: the resource
	// server checks that it is among them).
	accessTokens := provider.Verifier(&oidc.Config{ClientID: tn.URL, Now: tn.clock.Now})
	api := provider.Verifier(&oidc.Config{ClientID: "https://api.example", Now: tn.clock.Now})

	tok := lowRiskTokens(t, tn, id, secret, readDetails)
	idt, err := idTokens.Verify(ctx, tok.str("id_token"))
	if err != nil {
		t.Fatalf("ID token: %v", err)
	}
	var idClaims struct{ ACR string }
	if err := idt.Claims(&idClaims); err != nil || idt.Subject != "alice" || idClaims.ACR != "urn:countersign:acr:policy" {
		t.Fatalf("ID token claims: sub %q acr %q %v", idt.Subject, idClaims.ACR, err)
	}
	at := verifyAccessToken(t, accessTokens, tok.str("access_token"))
	if at.Subject != "alice" || at.ClientID != id || at.Act.Sub != id || at.Approval.By != "policy" {
		t.Fatalf("access token claims: %+v", at)
	}
	// Neither token passes for the other: the audiences differ.
	if _, err := idTokens.Verify(ctx, tok.str("access_token")); err == nil {
		t.Fatal("an access token verified as an ID token")
	}
	if _, err := accessTokens.Verify(ctx, tok.str("id_token")); err == nil {
		t.Fatal("an ID token verified as an access token")
	}
	// A token for an API named in locations is for that API only.
	loc := lowRiskTokens(t, tn, id, secret, `[{"type":"agent_action","action":"read","resource":"calendar","locations":["https://api.example"]}]`)
	verifyAccessToken(t, api, loc.str("access_token"))
	if _, err := accessTokens.Verify(ctx, loc.str("access_token")); err == nil {
		t.Fatal("a token for https://api.example verified for the issuer")
	}

	// The signing key rotates: the same verifier re-fetches the JWKS for
	// the new kid.
	if err := tn.keys.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	tn.clock.Advance(ciba.KeyPropagation + time.Second)
	rotated := lowRiskTokens(t, tn, id, secret, readDetails)
	if kid(t, rotated.str("access_token")) == kid(t, tok.str("access_token")) {
		t.Fatal("the key did not rotate")
	}
	verifyAccessToken(t, accessTokens, rotated.str("access_token"))
	if _, err := idTokens.Verify(ctx, rotated.str("id_token")); err != nil {
		t.Fatalf("ID token after rotation: %v", err)
	}
	// Expired is expired.
	tn.clock.Advance(6 * time.Minute)
	if _, err := accessTokens.Verify(ctx, rotated.str("access_token")); err == nil {
		t.Fatal("an expired access token verified")
	}
}

// accessClaims is what a resource server reads from an access token.
type accessClaims struct {
	Subject  string `json:"sub"`
	ClientID string `json:"client_id"`
	Act      struct {
		Sub string `json:"sub"`
	} `json:"act"`
	Approval struct {
		By string `json:"by"`
	} `json:"approval"`
}

// verifyAccessToken checks signature, iss, aud and exp with go-oidc and
// the JOSE header's typ, which go-oidc leaves to the caller (RFC 9068 §4).
func verifyAccessToken(t *testing.T, v *oidc.IDTokenVerifier, raw string) accessClaims {
	t.Helper()
	tok, err := v.Verify(context.Background(), raw)
	if err != nil {
		t.Fatalf("access token: %v", err)
	}
	if typ := header(t, raw)["typ"]; typ != "at+jwt" {
		t.Fatalf("access token typ %v, want at+jwt", typ)
	}
	var c accessClaims
	if err := tok.Claims(&c); err != nil {
		t.Fatal(err)
	}
	return c
}

func header(t *testing.T, raw string) map[string]any {
	t.Helper()
	h, _, _ := strings.Cut(raw, ".")
	b, err := base64.RawURLEncoding.DecodeString(h)
	var m map[string]any
	if err == nil {
		err = json.Unmarshal(b, &m)
	}
	if err != nil {
		t.Fatalf("JOSE header: %v", err)
	}
	return m
}

func kid(t *testing.T, raw string) any { return header(t, raw)["kid"] }

// lowRiskTokens runs a policy-approved request and returns /token's answer.
func lowRiskTokens(t *testing.T, tn *testNode, id, secret, details string) reply {
	t.Helper()
	r := tn.post("/bc-authorize", id, secret, url.Values{"scope": {"openid"}, "login_hint": {"alice"}, "authorization_details": {details}})
	if r.Status != 200 {
		t.Fatalf("bc-authorize: %d %s", r.Status, r.Raw)
	}
	// A client waits the interval before it asks (CIBA Core §7.3).
	tn.clock.Advance(time.Duration(r.Body["interval"].(float64)) * time.Second)
	tok := tn.post("/token", id, secret, url.Values{"grant_type": {"urn:openid:params:grant-type:ciba"}, "auth_req_id": {r.str("auth_req_id")}})
	if tok.Status != 200 {
		t.Fatalf("token: %d %s", tok.Status, tok.Raw)
	}
	return tok
}
