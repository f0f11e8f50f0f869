package ciba

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/countersign/countersign/ciba/oauth"
	"github.com/countersign/countersign/ciba/rar"
	"github.com/countersign/countersign/ciba/store"
	"github.com/countersign/countersign/ciba/store/redistest"
	"github.com/countersign/countersign/ciba/token"
)

// The JWT parsers of this package fuzzed: signed request objects, device
// authorizations and device decisions. Each input must give a valid result
// or an *oauth.Error of the endpoint's documented kind, never a panic.

const fuzzIssuer = "https://as.example"

var fuzzNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

type fuzzFixture struct {
	s   *Service
	key *ecdsa.PrivateKey
	cl  *store.Client
	dev *store.Device
}

func publicJWK(k *ecdsa.PrivateKey) json.RawMessage {
	raw, _ := k.PublicKey.Bytes()
	enc := base64.RawURLEncoding.EncodeToString
	b, _ := json.Marshal(map[string]any{"kty": "EC", "crv": "P-256", "x": enc(raw[1:33]), "y": enc(raw[33:]), "alg": "ES256"})
	return b
}

// newFuzzFixture is a service on miniredis with one client that signs
// request objects with ES256 and one enrolled device of alice, both using
// the same key.
func newFuzzFixture(f *testing.F) *fuzzFixture {
	rs := redistest.Mini(f)
	db := store.Open(rs.Client, rs.Prefix)
	db.Now = func() time.Time { return fuzzNow }
	s := New(Config{Issuer: fuzzIssuer}, db, nil, &token.Minter{Issuer: fuzzIssuer, AccessTTL: 5 * time.Minute})
	s.Now = func() time.Time { return fuzzNow }
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	jwk := publicJWK(key)
	cl := &store.Client{ID: "agent", RequestSigningAlg: "ES256",
		JWKS: json.RawMessage(`{"keys":[` + string(jwk) + `]}`)}
	ctx := context.Background()
	if err := db.CreateUser(ctx, &store.User{ID: "alice"}, store.Event{At: fuzzNow, Type: "user.created"}); err != nil {
		f.Fatal(err)
	}
	if err := db.CreateEnrollment(ctx, "alice", "code-1", fuzzNow.Add(time.Hour)); err != nil {
		f.Fatal(err)
	}
	dev, err := db.Enroll(ctx, "code-1", store.Device{ID: "dev-1", Name: "Phone", PublicKey: jwk, CreatedAt: fuzzNow},
		store.Event{At: fuzzNow, Type: "device.enrolled"})
	if err != nil {
		f.Fatal(err)
	}
	return &fuzzFixture{s: s, key: key, cl: cl, dev: dev}
}

func (fx *fuzzFixture) sign(claims jwt.MapClaims) string {
	s, _ := jwt.NewWithClaims(jwt.SigningMethodES256, claims).SignedString(fx.key)
	return s
}

// jwtSeeds are shapes every JWT parser must survive.
var jwtSeeds = []string{"", ".", "..", "a.b.c", "e30.e30.", "eyJhbGciOiJub25lIn0.e30.", "eyJhbGciOiJFUzI1NiJ9.e30.AAAA",
	"eyJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJhZ2VudCJ9.c2ln", strings.Repeat("A", 3000) + ".." + strings.Repeat("B", 100)}

// wantOAuth fails unless err is an *oauth.Error with one of codes.
func wantOAuth(t *testing.T, err error, codes ...string) {
	t.Helper()
	var oe *oauth.Error
	if !errors.As(err, &oe) {
		t.Fatalf("not an OAuth error: %v", err)
	}
	for _, c := range codes {
		if oe.Code == c {
			return
		}
	}
	t.Fatalf("code %s, want one of %v: %v", oe.Code, codes, err)
}

func FuzzRequestObject(f *testing.F) {
	fx := newFuzzFixture(f)
	base := func() jwt.MapClaims {
		return jwt.MapClaims{"iss": "agent", "aud": fuzzIssuer, "iat": fuzzNow.Unix(), "nbf": fuzzNow.Unix(),
			"exp": fuzzNow.Add(5 * time.Minute).Unix(), "jti": "j1", "scope": "openid", "login_hint": "alice"}
	}
	f.Add(fx.sign(base()))
	for _, mod := range []func(jwt.MapClaims){
		func(c jwt.MapClaims) { c["requested_expiry"] = 120.5 },
		func(c jwt.MapClaims) {
			c["authorization_details"] = []any{map[string]any{"type": "x", "amount": 1e308}}
		},
		func(c jwt.MapClaims) { c["binding_message"] = 7 },
		func(c jwt.MapClaims) { c["exp"] = "soon" },
		func(c jwt.MapClaims) { c["aud"] = []any{fuzzIssuer, 3} },
		func(c jwt.MapClaims) { delete(c, "nbf") },
		func(c jwt.MapClaims) { c["iat"] = 1e300 },
	} {
		c := base()
		c["jti"] = "j" + time.Now().String()
		mod(c)
		f.Add(fx.sign(c))
	}
	for _, s := range jwtSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ro string) {
		p, err := fx.s.readParams(context.Background(), fx.cl, url.Values{"request": {ro}})
		if err != nil {
			wantOAuth(t, err, oauth.InvalidRequest)
			return
		}
		// Accepted: it verifies with the client's key and names the client.
		claims := jwt.MapClaims{}
		if _, err := jwt.ParseWithClaims(ro, claims, func(*jwt.Token) (any, error) { return &fx.key.PublicKey, nil },
			jwt.WithValidMethods([]string{"ES256"}), jwt.WithoutClaimsValidation()); err != nil || claims["iss"] != "agent" {
			t.Fatalf("accepted a request object that does not verify: %v %v", err, claims)
		}
		for k := range p.has {
			if !contains(authParams, k) {
				t.Fatalf("unknown parameter %q taken from the request object", k)
			}
		}
	})
}

func FuzzDeviceAuthorization(f *testing.F) {
	fx := newFuzzFixture(f)
	base := func() jwt.MapClaims {
		return jwt.MapClaims{"iss": "dev-1", "aud": fuzzIssuer, "iat": fuzzNow.Unix(), "exp": fuzzNow.Add(30 * time.Second).Unix(), "jti": "d1"}
	}
	f.Add("Device " + fx.sign(base()))
	c := base()
	c["exp"] = fuzzNow.Add(time.Hour).Unix()
	f.Add("Device " + fx.sign(c))
	c = base()
	c["iss"] = "dev-2"
	f.Add("Device " + fx.sign(c))
	for _, s := range jwtSeeds {
		f.Add("Device " + s)
	}
	f.Add("Bearer x")
	f.Fuzz(func(t *testing.T, authorization string) {
		dev, err := fx.s.AuthenticateDevice(context.Background(), authorization)
		if err != nil {
			wantOAuth(t, err, oauth.InvalidToken)
			var oe *oauth.Error
			if errors.As(err, &oe); oe.Status != 401 || oe.Header.Get("WWW-Authenticate") == "" {
				t.Fatalf("device refusal without 401 and challenge: %+v", oe)
			}
			return
		}
		if dev == nil || dev.ID != "dev-1" {
			t.Fatalf("authenticated as %+v", dev)
		}
	})
}

func FuzzDecisionJWT(f *testing.F) {
	fx := newFuzzFixture(f)
	ctx := context.Background()
	var req store.Request
	pending := func(t testing.TB) {
		req = store.Request{ID: store.NewShardedID(store.ShardOf("alice")), ClientID: "agent", UserID: "alice", Scope: "openid",
			BindingMessage: "Pay ACME", DeliveryMode: string(ModePoll), Path: "device", CreatedAt: fuzzNow, ExpiresAt: fuzzNow.Add(5 * time.Minute)}
		if err := fx.s.db.CreateRequest(ctx, store.NewRequest{Request: req, State: store.Pending, Interval: 5}); err != nil {
			t.Fatal(err)
		}
	}
	pending(f)
	base := func() jwt.MapClaims {
		return jwt.MapClaims{"iss": "dev-1", "aud": fuzzIssuer, "iat": fuzzNow.Unix(), "exp": fuzzNow.Add(time.Minute).Unix(),
			"jti": "x1", "req": req.ID, "decision": "deny", "bm_hash": BMHash("Pay ACME"), "ad_hash": rar.Hash(nil)}
	}
	for _, mod := range []func(jwt.MapClaims){
		func(c jwt.MapClaims) { c["decision"] = "maybe" },
		func(c jwt.MapClaims) { c["req"] = 42 },
		func(c jwt.MapClaims) { c["bm_hash"] = nil },
		func(c jwt.MapClaims) { c["exp"] = fuzzNow.Add(time.Hour).Unix() },
		func(c jwt.MapClaims) { delete(c, "iat") },
	} {
		c := base()
		mod(c)
		f.Add(fx.sign(c))
	}
	for _, s := range jwtSeeds {
		f.Add(s)
	}
	// Last: a valid decision, which decides the request (a new one is
	// then made pending for the inputs that follow).
	f.Add(fx.sign(base()))
	dev := fx.dev
	f.Fuzz(func(t *testing.T, decision string) {
		err := fx.s.Decide(ctx, dev, req.ID, decision)
		if err != nil {
			wantOAuth(t, err, oauth.InvalidRequest, oauth.Conflict)
			return
		}
		// Recorded: it verifies with the device's key and names the request.
		var c decisionClaims
		if _, err := jwt.ParseWithClaims(decision, &c, func(*jwt.Token) (any, error) { return &fx.key.PublicKey, nil },
			jwt.WithValidMethods([]string{"ES256"}), jwt.WithoutClaimsValidation()); err != nil || c.Req != req.ID {
			t.Fatalf("recorded a decision that does not verify: %v %+v", err, c)
		}
		pending(t) // the next input finds a pending request again
	})
}
