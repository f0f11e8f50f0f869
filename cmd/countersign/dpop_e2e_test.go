package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/countersign/countersign/ciba/agent"
	"github.com/countersign/countersign/ciba/dpop"
	"github.com/countersign/countersign/ciba/resource"
	"github.com/countersign/countersign/ciba/token"
)

// dpopKey is an agent's proof key and the thumbprint a bound token names.
type dpopKey struct {
	priv *ecdsa.PrivateKey
	jkt  string
	jwk  map[string]any
}

func newDPoPKey(t *testing.T) dpopKey {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwk, err := dpop.PublicJWK(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	jkt, err := token.Thumbprint(jwk)
	if err != nil {
		t.Fatal(err)
	}
	return dpopKey{priv: priv, jkt: jkt, jwk: jwk}
}

// dpopFlow drives /token with proofs on one node, keeping the server's
// latest DPoP-Nonce (RFC 9449 §8) so the tests pass whether or not the
// node demands nonces.
type dpopFlow struct {
	tn         *testNode
	id, secret string
	nonce      string
}

// proof signs a proof for POST /token at the node's clock.
func (f *dpopFlow) proof(k dpopKey, mod func(*dpop.Claims)) string {
	f.tn.t.Helper()
	c := dpop.Claims{HTM: "POST", HTU: f.tn.URL + "/token", IAT: f.tn.clock.Now(), Nonce: f.nonce}
	if mod != nil {
		mod(&c)
	}
	p, err := dpop.Sign(k.priv, c)
	if err != nil {
		f.tn.t.Fatal(err)
	}
	return p
}

// post sends a client-authenticated form to /token with the given DPoP
// header values (none, one or several).
func (f *dpopFlow) post(form url.Values, proofs ...string) reply {
	f.tn.t.Helper()
	req, _ := http.NewRequest("POST", f.tn.URL+"/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(f.id), url.QueryEscape(f.secret))
	for _, p := range proofs {
		req.Header.Add("DPoP", p)
	}
	r := f.tn.do(req)
	if n := r.Header.Get("DPoP-Nonce"); n != "" {
		f.nonce = n
	}
	return r
}

// redeem asks /token for authReqID with a proof by k, retrying once when
// the node answers use_dpop_nonce.
func (f *dpopFlow) redeem(authReqID string, k dpopKey) reply {
	f.tn.t.Helper()
	form := cibaForm(authReqID)
	r := f.post(form, f.proof(k, nil))
	if r.Status == 400 && r.str("error") == "use_dpop_nonce" {
		if r.Header.Get("DPoP-Nonce") == "" {
			f.tn.t.Fatalf("use_dpop_nonce without a DPoP-Nonce header: %v", r.Header)
		}
		r = f.post(form, f.proof(k, nil))
	}
	return r
}

// lowRisk starts a request that policy approves at once.
func (f *dpopFlow) lowRisk() string {
	f.tn.t.Helper()
	r := f.tn.post("/bc-authorize", f.id, f.secret, url.Values{"scope": {"openid"}, "login_hint": {"alice"}, "authorization_details": {readDetails}})
	if r.Status != 200 || r.Body["interval"] != float64(1) {
		f.tn.t.Fatalf("bc-authorize: %d %s", r.Status, r.Raw)
	}
	return r.str("auth_req_id")
}

func cibaForm(authReqID string) url.Values {
	return url.Values{"grant_type": {"urn:openid:params:grant-type:ciba"}, "auth_req_id": {authReqID}}
}

// wantBound asserts a DPoP token response bound to k (RFC 9449 §5, §6.1).
func wantBound(t *testing.T, tn *testNode, r reply, k dpopKey) map[string]any {
	t.Helper()
	if r.Status != 200 || r.str("token_type") != "DPoP" || r.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("want a DPoP token, got %d token_type %q error %q %q", r.Status, r.str("token_type"), r.str("error"), r.str("error_description"))
	}
	at := tn.verify(r.str("access_token"), "at+jwt")
	cnf, _ := at["cnf"].(map[string]any)
	if cnf["jkt"] != k.jkt || len(cnf) != 1 {
		t.Fatalf("cnf %v, want jkt %s", at["cnf"], k.jkt)
	}
	return at
}

func TestDPoPTokenIsBoundToTheProofKey(t *testing.T) {
	tn := startNode(t, nil)
	id, secret := setup(t, tn)
	f := &dpopFlow{tn: tn, id: id, secret: secret}
	k := newDPoPKey(t)
	r := f.redeem(f.lowRisk(), k)
	at := wantBound(t, tn, r, k)
	if at["sub"] != "alice" || at["client_id"] != id {
		t.Fatalf("claims %v", at)
	}
	// Discovery advertises the proof algorithms (RFC 9449 §5.1), ES256 first among them.
	disc, _ := http.NewRequest("GET", tn.URL+"/.well-known/openid-configuration", nil)
	d := tn.do(disc)
	algs, _ := d.Body["dpop_signing_alg_values_supported"].([]any)
	if len(algs) == 0 || algs[0] != "ES256" {
		t.Fatalf("dpop_signing_alg_values_supported %v", d.Body["dpop_signing_alg_values_supported"])
	}
	for _, a := range algs {
		if a == "none" || strings.HasPrefix(a.(string), "HS") {
			t.Fatalf("advertised %v", a)
		}
	}
	// Without a proof the same client still gets a Bearer token.
	plain := tn.post("/token", id, secret, cibaForm(f.lowRisk()))
	if plain.Status != 200 || plain.str("token_type") != "Bearer" {
		t.Fatalf("bearer: %d %s", plain.Status, plain.Raw)
	}
	if pat := tn.verify(plain.str("access_token"), "at+jwt"); pat["cnf"] != nil {
		t.Fatalf("unbound token has cnf %v", pat["cnf"])
	}
}

func TestDPoPMandatoryClientNeedsAProof(t *testing.T) {
	tn := startNode(t, nil)
	setup(t, tn)
	id, secret := tn.client(map[string]any{"client_id": "bound-agent", "dpop_bound_access_tokens": true})
	f := &dpopFlow{tn: tn, id: id, secret: secret}
	authReqID := f.lowRisk()
	wantError(t, tn.post("/token", id, secret, cibaForm(authReqID)), 400, "invalid_dpop_proof")
	// The refusal did not consume the request: a proof gets the token.
	k := newDPoPKey(t)
	wantBound(t, tn, f.redeem(authReqID, k), k)
	// The client reads back its metadata.
	if r := tn.admin("GET", "/admin/clients/"+id, nil); r.Status != 200 || r.Body["dpop_bound_access_tokens"] != true {
		t.Fatalf("client: %d %s", r.Status, r.Raw)
	}
	// Push clients cannot present a proof when the token is pushed.
	r := tn.admin("POST", "/admin/clients", map[string]any{"client_id": "push-bound", "dpop_bound_access_tokens": true,
		"backchannel_token_delivery_mode": "push", "backchannel_client_notification_endpoint": "http://127.0.0.1:9/cb"})
	if r.Status != 400 || r.str("error") != "invalid_client_metadata" {
		t.Fatalf("push + dpop: %d %s", r.Status, r.Raw)
	}
}

func TestDPoPProofRefusals(t *testing.T) {
	tn := startNode(t, nil)
	id, secret := setup(t, tn)
	f := &dpopFlow{tn: tn, id: id, secret: secret}
	k, other := newDPoPKey(t), newDPoPKey(t)
	// A first good exchange: the proof it used, and the node's nonce if any.
	first := f.proof(k, nil)
	r := f.post(cibaForm(f.lowRisk()), first)
	if r.Status == 400 && r.str("error") == "use_dpop_nonce" {
		first = f.proof(k, nil)
		r = f.post(cibaForm(f.lowRisk()), first)
	}
	wantBound(t, tn, r, k)

	authReqID := f.lowRisk()
	form := cibaForm(authReqID)
	withPrivate := func() string {
		// A proof whose jwk header carries the private key (RFC 9449 §4.3 step 7).
		p := f.proof(k, nil)
		parts := strings.Split(p, ".")
		d, err := k.priv.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		hdr := map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": map[string]any{"kty": "EC", "crv": "P-256",
			"x": k.jwk["x"], "y": k.jwk["y"], "d": base64.RawURLEncoding.EncodeToString(d)}}
		b, _ := json.Marshal(hdr)
		return base64.RawURLEncoding.EncodeToString(b) + "." + parts[1] + "." + parts[2]
	}
	otherSigner := func() string {
		// Signed by another key than the one in its jwk header.
		p := strings.Split(f.proof(other, nil), ".")
		q := strings.Split(f.proof(k, nil), ".")
		return q[0] + "." + p[1] + "." + p[2]
	}
	cases := []struct {
		name   string
		proofs []string
	}{
		{"replayed proof", []string{first}},
		{"wrong htm", []string{f.proof(k, func(c *dpop.Claims) { c.HTM = "GET" })}},
		{"wrong htu", []string{f.proof(k, func(c *dpop.Claims) { c.HTU = tn.URL + "/bc-authorize" })}},
		{"stale iat", []string{f.proof(k, func(c *dpop.Claims) { c.IAT = c.IAT.Add(-10 * time.Minute) })}},
		{"future iat", []string{f.proof(k, func(c *dpop.Claims) { c.IAT = c.IAT.Add(10 * time.Minute) })}},
		{"private key in jwk", []string{withPrivate()}},
		{"signed by another key", []string{otherSigner()}},
		{"two DPoP headers", []string{f.proof(k, nil), f.proof(k, nil)}},
		{"not a JWT", []string{"not-a-jwt"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wantError(t, f.post(form, c.proofs...), 400, "invalid_dpop_proof")
		})
	}
	// None of that consumed the request.
	wantBound(t, tn, f.redeem(authReqID, k), k)
}

func TestResourceMiddlewareNeedsTheProof(t *testing.T) {
	tn := startNode(t, nil)
	id, secret := setup(t, tn)
	rsID, rsSecret := tn.client(map[string]any{"client_id": "calendar-rs", "resource_server": true})
	f := &dpopFlow{tn: tn, id: id, secret: secret}
	k := newDPoPKey(t)
	r := f.redeem(f.lowRisk(), k)
	wantBound(t, tn, r, k)
	at := r.str("access_token")
	for _, mode := range []string{"jwks", "introspection"} {
		t.Run(mode, func(t *testing.T) {
			m := &resource.Middleware{Issuer: tn.URL, Audience: tn.URL, Now: tn.clock.Now, Realm: "calendar"}
			if mode == "introspection" {
				m.IntrospectionClientID, m.IntrospectionSecret = rsID, rsSecret
			}
			var seen *resource.Claims
			rs := httptest.NewServer(m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				seen, _ = resource.FromContext(r.Context())
				w.WriteHeader(204)
			})))
			defer rs.Close()
			call := func(auth, proof string) *http.Response {
				req, _ := http.NewRequest("GET", rs.URL+"/events", nil)
				req.Header.Set("Authorization", auth)
				if proof != "" {
					req.Header.Set("DPoP", proof)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				return resp
			}
			refused := func(resp *http.Response, code string) {
				t.Helper()
				if c := resp.Header.Get("WWW-Authenticate"); resp.StatusCode != 401 || !strings.HasPrefix(c, "DPoP ") || !strings.Contains(c, `error="`+code+`"`) {
					t.Fatalf("want 401 DPoP %s, got %d %q", code, resp.StatusCode, c)
				}
			}
			// The stolen token alone is useless.
			refused(call("Bearer "+at, ""), "invalid_token")
			refused(call("DPoP "+at, ""), "invalid_dpop_proof")
			rsProof := func(key dpopKey) string {
				p, _ := dpop.Sign(key.priv, dpop.Claims{HTM: "GET", HTU: rs.URL + "/events", IAT: tn.clock.Now(), AccessToken: at})
				return p
			}
			refused(call("DPoP "+at, rsProof(newDPoPKey(t))), "invalid_dpop_proof")
			if resp := call("DPoP "+at, rsProof(k)); resp.StatusCode != 204 || seen == nil || seen.JKT != k.jkt || seen.Subject != "alice" || seen.ClientID != id {
				t.Fatalf("with its proof: %d %+v", resp.StatusCode, seen)
			}
		})
	}
}

func TestAgentAuthorizeLowRiskPoll(t *testing.T) {
	tn := startNode(t, nil)
	id, secret := setup(t, tn)
	var waits []time.Duration
	c := &agent.Client{Issuer: tn.URL, ClientID: id, Secret: secret, Now: tn.clock.Now,
		Sleep: func(ctx context.Context, d time.Duration) error { waits = append(waits, d); return nil }}
	tok, err := c.Authorize(context.Background(), agent.Request{Scope: "openid", LoginHint: "alice", BindingMessage: "Trip 42",
		AuthorizationDetails: readDetails})
	if err != nil {
		t.Fatal(err)
	}
	// Policy approved it in /bc-authorize: interval 1, the first poll gets it.
	if tok.TokenType != "Bearer" || tok.AuthReqID == "" || tok.Scope != "openid" || tok.IDToken == "" || len(waits) != 0 {
		t.Fatalf("token %+v waits %v", tok, waits)
	}
	at := tn.verify(tok.AccessToken, "at+jwt")
	if at["sub"] != "alice" || at["client_id"] != id {
		t.Fatalf("claims %v", at)
	}
	// A refusal comes back typed.
	_, err = c.Authorize(context.Background(), agent.Request{Scope: "openid", LoginHint: "mallory"})
	if e, ok := err.(*agent.Error); !ok || e.Code != "unknown_user_id" || e.Status != 400 {
		t.Fatalf("unknown user: %v", err)
	}
}

func TestAgentAuthorizeWithDPoP(t *testing.T) {
	tn := startNode(t, nil)
	id, secret := setup(t, tn)
	k := newDPoPKey(t)
	c := &agent.Client{Issuer: tn.URL, ClientID: id, Secret: secret, Now: tn.clock.Now, DPoPKey: k.priv}
	tok, err := c.Authorize(context.Background(), agent.Request{Scope: "openid", LoginHint: "alice", AuthorizationDetails: readDetails})
	if err != nil {
		t.Fatal(err)
	}
	if tok.TokenType != "DPoP" {
		t.Fatalf("token_type %q", tok.TokenType)
	}
	at := tn.verify(tok.AccessToken, "at+jwt")
	if cnf, _ := at["cnf"].(map[string]any); cnf["jkt"] != k.jkt {
		t.Fatalf("cnf %v", at["cnf"])
	}
}
