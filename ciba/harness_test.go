package ciba

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/countersign/countersign/ciba/clientauth"
	"github.com/countersign/countersign/ciba/oauth"
	"github.com/countersign/countersign/ciba/rar"
	"github.com/countersign/countersign/ciba/store"
	"github.com/countersign/countersign/ciba/store/redistest"
	"github.com/countersign/countersign/ciba/token"
	"github.com/countersign/countersign/risk"
	"github.com/countersign/countersign/rules"
)

// The harness: a Service over a real store on miniredis, a fixed clock
// (moved only by the test), the default ruleset and a fixed cast of
// clients, users and one enrolled device. Validation tables of each
// endpoint run against it in milliseconds.

const hIssuer = "https://as.example"

// hSecret is every harness client's secret.
const hSecret = clientauth.Secret("s3cret")

var hStart = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// Authorization details the default ruleset approves by policy, and
// sends to the phone.
const (
	hRead    = `[{"type":"agent_action","action":"read","resource":"calendar"}]`
	hPayment = `[{"type":"payment_initiation","action":"transfer","amount":25000,"currency":"EUR","creditor":{"name":"ACME"}}]`
)

type harness struct {
	t   testing.TB
	s   *Service
	db  *store.DB
	now time.Time
	key *ecdsa.PrivateKey // the device's key, and the signer's request-object key
	dev *store.Device
}

// hClients are the harness's clients, by id.
var hClients = []store.Client{
	{ID: "agent", GrantTypes: []string{oauth.GrantCIBA, oauth.GrantTokenExchange}, DelegatesTo: []string{"sub"}, MaxDelegationDepth: 2},
	{ID: "sub", GrantTypes: []string{oauth.GrantTokenExchange}, MaxDelegationDepth: 2},
	{ID: "stranger", GrantTypes: []string{oauth.GrantTokenExchange}, MaxDelegationDepth: 2},
	{ID: "exchange-only", GrantTypes: []string{oauth.GrantTokenExchange}},
	{ID: "narrow", GrantTypes: []string{oauth.GrantCIBA}, Scope: "openid profile"},
	{ID: "pinger", GrantTypes: []string{oauth.GrantCIBA}, DeliveryMode: string(ModePing), NotificationEndpoint: "https://agent.example/cb"},
	{ID: "pusher", GrantTypes: []string{oauth.GrantCIBA}, DeliveryMode: string(ModePush), NotificationEndpoint: "https://agent.example/cb"},
	{ID: "coder", GrantTypes: []string{oauth.GrantCIBA}, UserCodeParameter: true},
	{ID: "dpop-only", GrantTypes: []string{oauth.GrantCIBA}, DPoPBoundAccessTokens: true},
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	rs := redistest.Mini(t)
	h := &harness{t: t, db: store.Open(rs.Client, rs.Prefix), now: hStart}
	clock := func() time.Time { return h.now }
	h.db.Now = clock
	ctx := context.Background()
	keys, err := LoadKeys(ctx, h.db)
	if err != nil {
		t.Fatal(err)
	}
	engine := risk.NewEngine(SignalReader{DB: h.db}, rules.Default())
	engine.Now = clock
	minter := &token.Minter{Issuer: hIssuer, Keys: keys.Get, Now: clock}
	h.s = New(Config{Issuer: hIssuer}, h.db, engine, minter, WithClock(clock))
	if h.key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	for _, c := range hClients {
		c.AuthMethod, c.SecretHash, c.CreatedAt = clientauth.SecretBasic, clientauth.HashSecret(hSecret), hStart
		if c.DeliveryMode == "" {
			c.DeliveryMode = string(ModePoll)
		}
		h.must(h.db.CreateClient(ctx, &c, store.Event{At: hStart, Type: "client.created"}))
	}
	signer := store.Client{ID: "signer", GrantTypes: []string{oauth.GrantCIBA}, RequestSigningAlg: "ES256",
		AuthMethod: clientauth.SecretBasic, SecretHash: clientauth.HashSecret(hSecret), DeliveryMode: string(ModePoll),
		JWKS: json.RawMessage(`{"keys":[` + string(publicJWK(h.key)) + `]}`), CreatedAt: hStart}
	h.must(h.db.CreateClient(ctx, &signer, store.Event{At: hStart, Type: "client.created"}))
	h.must(h.db.CreateUser(ctx, &store.User{ID: "alice", Email: "alice@example.com", CreatedAt: hStart,
		Attributes: map[string]any{"spending_limit": 1000, "timezone": "UTC", "user_code": "4711"}},
		store.Event{At: hStart, Type: "user.created"}))
	h.must(h.db.CreateUser(ctx, &store.User{ID: "bob", Email: "bob@example.com", CreatedAt: hStart,
		MayAct: []store.MayAct{{ClientID: "narrow", Scope: "openid"}}}, store.Event{At: hStart, Type: "user.created"}))
	h.must(h.db.CreateEnrollment(ctx, "alice", "code-1", hStart.Add(time.Hour)))
	h.dev, err = h.db.Enroll(ctx, "code-1", store.Device{ID: "dev-1", Name: "Phone", PublicKey: publicJWK(h.key), CreatedAt: hStart},
		store.Event{At: hStart, Type: "device.enrolled"})
	h.must(err)
	return h
}

func (h *harness) must(err error) {
	h.t.Helper()
	if err != nil {
		h.t.Fatal(err)
	}
}

func creds(client string) clientauth.Credentials {
	return clientauth.Credentials{ClientID: client, Method: clientauth.SecretBasic, Secret: hSecret}
}

func (h *harness) authorize(client string, form url.Values) (*AuthorizeResponse, error) {
	return h.s.BackchannelAuthorize(context.Background(), AuthorizeInput{Credentials: creds(client), Form: form,
		Endpoint: hIssuer + "/bc-authorize", IP: "192.0.2.1"})
}

// mustAuthorize starts a request of agent for alice with details.
func (h *harness) mustAuthorize(details string) string {
	h.t.Helper()
	resp, err := h.authorize("agent", url.Values{"scope": {"openid"}, "login_hint": {"alice@example.com"},
		"binding_message": {"Pay ACME"}, "authorization_details": {details}})
	h.must(err)
	return resp.AuthReqID
}

func (h *harness) token(client string, form url.Values) (*TokenResponse, error) {
	return h.s.Token(context.Background(), TokenInput{Credentials: creds(client), Form: form,
		Endpoint: hIssuer + "/token", IP: "192.0.2.1"})
}

// accessToken is a policy-approved access token of agent for alice.
func (h *harness) accessToken() string {
	h.t.Helper()
	id := h.mustAuthorize(hRead)
	resp, err := h.token("agent", url.Values{"grant_type": {oauth.GrantCIBA}, "auth_req_id": {id}})
	h.must(err)
	return resp.AccessToken
}

func (h *harness) sign(claims jwt.MapClaims) string {
	s, err := jwt.NewWithClaims(jwt.SigningMethodES256, claims).SignedString(h.key)
	h.must(err)
	return s
}

// decision is a valid decision JWT of the harness device for request r.
func (h *harness) decision(r *store.Request, decision string) jwt.MapClaims {
	var details []rar.Detail
	if len(r.AuthorizationDetails) > 0 {
		h.must(json.Unmarshal(r.AuthorizationDetails, &details))
	}
	return jwt.MapClaims{"iss": h.dev.ID, "aud": hIssuer, "iat": h.now.Unix(), "exp": h.now.Add(time.Minute).Unix(),
		"jti": store.NewID(), "req": r.ID, "decision": decision, "bm_hash": BMHash(r.BindingMessage), "ad_hash": rar.Hash(details)}
}

// wantErr fails unless err is the OAuth error code with status; code ""
// wants success.
func wantErr(t testing.TB, err error, code string, status int) {
	t.Helper()
	if code == "" {
		if err != nil {
			t.Fatalf("want success, got %v", err)
		}
		return
	}
	var oe *oauth.Error
	if !errors.As(err, &oe) {
		t.Fatalf("want %s (%d), got %v", code, status, err)
	}
	if oe.Code != code || oe.Status != status {
		t.Fatalf("want %s (%d), got %s (%d): %s", code, status, oe.Code, oe.Status, oe.Description)
	}
	if oe.Description == "" {
		t.Fatalf("%s without error_description", code)
	}
}
