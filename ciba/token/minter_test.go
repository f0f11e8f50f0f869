package token

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/countersign/countersign/ciba/oauth"
	"github.com/golang-jwt/jwt/v5"
)

const issuer = "https://as.example"

// clock is an injected time source the tests move by hand.
type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

func newMinter(t testing.TB) (*Minter, *KeySet, *clock) {
	t.Helper()
	ks := KeySet{}.Rotate(mustKey(t))
	clk := &clock{now: t0.Add(500 * time.Millisecond)}
	m := &Minter{Issuer: issuer, Keys: func() KeySet { return ks }, AccessTTL: 5 * time.Minute, IDTTL: 10 * time.Minute, Now: clk.Now}
	return m, &ks, clk
}

// parts decodes a compact JWS's header and payload.
func parts(t *testing.T, tok string) (header, payload map[string]any) {
	t.Helper()
	p := strings.Split(tok, ".")
	if len(p) != 3 {
		t.Fatalf("token has %d parts", len(p))
	}
	for i, dst := range []*map[string]any{&header, &payload} {
		b, err := base64.RawURLEncoding.DecodeString(p[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, dst); err != nil {
			t.Fatal(err)
		}
	}
	return header, payload
}

func fullClaims() AccessClaims {
	return AccessClaims{
		Subject:              "user-1",
		Audience:             []string{"https://bank.example"},
		ClientID:             "agent-c",
		Act:                  &Act{Sub: "agent-c", Act: &Act{Sub: "agent-b", Act: &Act{Sub: "agent-a"}}},
		Scope:                "payments",
		AuthorizationDetails: json.RawMessage(`[ {"type":"payment_initiation","amount":10.50,"currency":"EUR","creditor":{"name":"A <&> B"}} ]`),
		GrantID:              "grant-1",
		Approval:             Approval{By: "device", Rules: []string{"over-limit"}, DeviceID: "dev-1", DecisionJTI: "dj-1"},
		Cnf:                  &Cnf{JKT: "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"},
		AuthTime:             t0.Add(-time.Minute),
		ACR:                  oauth.ACRDevice,
	}
}

func TestAccessRoundTrip(t *testing.T) {
	m, ks, _ := newMinter(t)
	tok, minted, err := m.Access(fullClaims())
	if err != nil {
		t.Fatal(err)
	}
	got, err := m.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, minted) {
		t.Fatalf("Verify = %+v\nwant %+v", got, minted)
	}
	if minted.Issuer != issuer || !minted.IssuedAt.Equal(t0) || !minted.Expiry.Equal(t0.Add(5*time.Minute)) {
		t.Errorf("iss %s iat %v exp %v", minted.Issuer, minted.IssuedAt, minted.Expiry)
	}
	if raw, _ := base64.RawURLEncoding.DecodeString(minted.ID); len(raw) < 16 {
		t.Errorf("jti %q carries %d bytes, want >= 16", minted.ID, len(raw))
	}
	if string(got.AuthorizationDetails) != `[{"type":"payment_initiation","amount":10.50,"currency":"EUR","creditor":{"name":"A <&> B"}}]` {
		t.Errorf("authorization_details = %s", got.AuthorizationDetails)
	}

	h, p := parts(t, tok)
	if !reflect.DeepEqual(h, map[string]any{"alg": "ES256", "typ": "at+jwt", "kid": ks.Current.ID}) {
		t.Errorf("header = %v", h)
	}
	want := map[string]any{
		"iss": issuer, "sub": "user-1", "aud": "https://bank.example", "client_id": "agent-c",
		"act":   map[string]any{"sub": "agent-c", "act": map[string]any{"sub": "agent-b", "act": map[string]any{"sub": "agent-a"}}},
		"scope": "payments",
		"authorization_details": []any{map[string]any{"type": "payment_initiation", "amount": 10.5, "currency": "EUR",
			"creditor": map[string]any{"name": "A <&> B"}}},
		"jti": minted.ID, "iat": float64(t0.Unix()), "exp": float64(t0.Add(5 * time.Minute).Unix()),
		"grant_id":  "grant-1",
		"approval":  map[string]any{"by": "device", "rules": []any{"over-limit"}, "device_id": "dev-1", "decision_jti": "dj-1"},
		"cnf":       map[string]any{"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"},
		"auth_time": float64(t0.Add(-time.Minute).Unix()), "acr": oauth.ACRDevice,
	}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("payload = %v\nwant %v", p, want)
	}
}

func TestAccessDefaultsAndAudience(t *testing.T) {
	m, _, _ := newMinter(t)
	tok, c, err := m.Access(AccessClaims{Subject: "u", ClientID: "a", ID: "fixed-jti"})
	if err != nil {
		t.Fatal(err)
	}
	_, p := parts(t, tok)
	if p["aud"] != issuer || p["jti"] != "fixed-jti" || c.ID != "fixed-jti" {
		t.Errorf("aud %v jti %v, want the issuer and fixed-jti", p["aud"], p["jti"])
	}
	if !reflect.DeepEqual(p["approval"], map[string]any{"by": "", "rules": []any{}}) {
		t.Errorf("approval = %v", p["approval"])
	}
	for _, absent := range []string{"act", "scope", "authorization_details", "grant_id", "cnf", "auth_time", "acr"} {
		if v, ok := p[absent]; ok {
			t.Errorf("claim %s = %v, want it absent", absent, v)
		}
	}
	tok, _, err = m.Access(AccessClaims{Subject: "u", ClientID: "a", Audience: []string{"https://a.example", "https://b.example"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, p := parts(t, tok); !reflect.DeepEqual(p["aud"], []any{"https://a.example", "https://b.example"}) {
		t.Errorf("aud = %v, want an array of two", p["aud"])
	}
	for name, c := range map[string]AccessClaims{
		"no sub":              {ClientID: "a"},
		"no client_id":        {Subject: "u"},
		"details not array":   {Subject: "u", ClientID: "a", AuthorizationDetails: json.RawMessage(`{"type":"x"}`)},
		"details not JSON":    {Subject: "u", ClientID: "a", AuthorizationDetails: json.RawMessage(`[`)},
		"expiry already past": {Subject: "u", ClientID: "a", Expiry: t0},
	} {
		if _, _, err := m.Access(c); err == nil {
			t.Errorf("%s: Access succeeded", name)
		}
	}
}

func TestAccessExpiryAndClock(t *testing.T) {
	m, _, clk := newMinter(t)
	// A token exchanged from one expiring in 90.7 s never outlives it.
	limit := clk.now.Add(90*time.Second + 200*time.Millisecond)
	tok, c, err := m.Access(AccessClaims{Subject: "u", ClientID: "a", Expiry: limit})
	if err != nil {
		t.Fatal(err)
	}
	if !c.Expiry.Equal(t0.Add(90*time.Second)) || c.Expiry.After(limit) {
		t.Fatalf("exp = %v, want %v", c.Expiry, t0.Add(90*time.Second))
	}
	if _, c2, _ := m.Access(AccessClaims{Subject: "u", ClientID: "a", Expiry: t0.Add(time.Hour)}); !c2.Expiry.Equal(t0.Add(5 * time.Minute)) {
		t.Errorf("a later limit gave exp %v, want now+AccessTTL", c2.Expiry)
	}

	clk.now = c.Expiry.Add(-time.Second)
	if _, err := m.Verify(tok); err != nil {
		t.Fatalf("one second before exp: %v", err)
	}
	clk.now = c.Expiry
	if _, err := m.Verify(tok); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("at exp: Verify = %v, want expired", err)
	}
}

func TestVerifyRefuses(t *testing.T) {
	m, ks, _ := newMinter(t)
	good, _, err := m.Access(AccessClaims{Subject: "u", ClientID: "a"})
	if err != nil {
		t.Fatal(err)
	}
	_, payload := parts(t, good)
	seg := strings.Split(good, ".")
	kid := ks.Current.ID

	signWith := func(method jwt.SigningMethod, key any, header map[string]any, claims jwt.MapClaims) string {
		tk := jwt.NewWithClaims(method, claims)
		for k, v := range header {
			tk.Header[k] = v
		}
		s, err := tk.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	ours := ks.Current.Private
	pub, _ := ours.PublicKey.Bytes()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	otherKey := mustKey(t)
	without := func(name string) jwt.MapClaims {
		c := jwt.MapClaims{}
		for k, v := range payload {
			if k != name {
				c[k] = v
			}
		}
		return c
	}
	at := map[string]any{"typ": "at+jwt", "kid": kid}
	idTok, err := m.ID(IDClaims{Subject: "u", Audience: "a"})
	if err != nil {
		t.Fatal(err)
	}
	other := *m
	other.Issuer = "https://other.example"
	foreign, _, err := other.Access(AccessClaims{Subject: "u", ClientID: "a"})
	if err != nil {
		t.Fatal(err)
	}

	cases := map[string]string{
		"alg none":          base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"at+jwt","kid":"`+kid+`"}`)) + "." + seg[1] + ".",
		"HS256 with pubkey": signWith(jwt.SigningMethodHS256, pub, at, jwt.MapClaims(payload)),
		"RS256":             signWith(jwt.SigningMethodRS256, rsaKey, at, jwt.MapClaims(payload)),
		"ES256 other key":   signWith(jwt.SigningMethodES256, otherKey.Private, at, jwt.MapClaims(payload)),
		"unknown kid":       signWith(jwt.SigningMethodES256, otherKey.Private, map[string]any{"typ": "at+jwt", "kid": otherKey.ID}, jwt.MapClaims(payload)),
		"no kid":            signWith(jwt.SigningMethodES256, ours, map[string]any{"typ": "at+jwt"}, jwt.MapClaims(payload)),
		"typ JWT":           signWith(jwt.SigningMethodES256, ours, map[string]any{"typ": "JWT", "kid": kid}, jwt.MapClaims(payload)),
		"crit header":       signWith(jwt.SigningMethodES256, ours, map[string]any{"typ": "at+jwt", "kid": kid, "crit": []string{"exp"}}, jwt.MapClaims(payload)),
		"ID token":          idTok,
		"other issuer":      foreign,
		"no exp":            signWith(jwt.SigningMethodES256, ours, at, without("exp")),
		"no client_id":      signWith(jwt.SigningMethodES256, ours, at, without("client_id")),
		"no jti":            signWith(jwt.SigningMethodES256, ours, at, without("jti")),
		"no aud":            signWith(jwt.SigningMethodES256, ours, at, without("aud")),
		"tampered payload":  seg[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(mustDecode(t, seg[1]), `"sub":"u"`, `"sub":"v"`, 1))) + "." + seg[2],
		"not a JWT":         "abc",
	}
	reasons := map[string]string{
		"alg none": "signing method none is invalid", "HS256 with pubkey": "signing method HS256 is invalid",
		"RS256": "signing method RS256 is invalid", "ES256 other key": "verification error",
		"unknown kid": "unknown kid", "no kid": "unknown kid", "typ JWT": `unexpected typ "JWT"`,
		"crit header": "unsupported crit header", "ID token": `unexpected typ "JWT"`, "other issuer": "invalid issuer",
		"no exp": "exp claim is required", "no client_id": "lacks a required claim", "no jti": "lacks a required claim",
		"no aud": "lacks a required claim", "tampered payload": "verification error", "not a JWT": "malformed",
	}
	for name, tok := range cases {
		c, err := m.Verify(tok)
		if err == nil || !strings.Contains(err.Error(), reasons[name]) {
			t.Errorf("%s: Verify = %+v, %v; want an error containing %q", name, c, err, reasons[name])
		}
	}
	// The control: the same construction with our key verifies.
	if _, err := m.Verify(signWith(jwt.SigningMethodES256, ours, map[string]any{"typ": "application/AT+JWT", "kid": kid}, jwt.MapClaims(payload))); err != nil {
		t.Errorf("re-signed control token: %v", err)
	}
}

func mustDecode(t *testing.T, s string) string {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRotationVerification(t *testing.T) {
	m, ks, _ := newMinter(t)
	tok, _, err := m.Access(AccessClaims{Subject: "u", ClientID: "a"})
	if err != nil {
		t.Fatal(err)
	}
	*ks = ks.Rotate(mustKey(t))
	if _, err := m.Verify(tok); err != nil {
		t.Fatalf("after one rotation: %v", err)
	}
	tok2, _, _ := m.Access(AccessClaims{Subject: "u", ClientID: "a"})
	if h, _ := parts(t, tok2); h["kid"] != ks.Current.ID {
		t.Errorf("new tokens signed with kid %v, want the current %s", h["kid"], ks.Current.ID)
	}
	*ks = ks.Rotate(mustKey(t))
	if _, err := m.Verify(tok); err != nil {
		t.Fatalf("after two rotations (second previous key): %v", err)
	}
	*ks = ks.Rotate(mustKey(t))
	if _, err := m.Verify(tok); err == nil {
		t.Fatal("a key rotated out of the set still verifies")
	}
	if _, err := m.Verify(tok2); err != nil {
		t.Fatalf("token of the second key after its two rotations: %v", err)
	}
}

func TestActChain(t *testing.T) {
	a := &Act{Sub: "c", Act: &Act{Sub: "b", Act: &Act{Sub: "a"}}}
	b, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"sub":"c","act":{"sub":"b","act":{"sub":"a"}}}` {
		t.Errorf("act JSON = %s", b)
	}
	if got := a.Chain(); !reflect.DeepEqual(got, []string{"a", "b", "c"}) {
		t.Errorf("Chain = %v, want [a b c] (approved agent first)", got)
	}
	if got := (&Act{Sub: "a"}).Chain(); !reflect.DeepEqual(got, []string{"a"}) {
		t.Errorf("Chain of one = %v", got)
	}
	var none *Act
	if got := none.Chain(); got != nil {
		t.Errorf("nil Chain = %v", got)
	}
}

func TestAtHash(t *testing.T) {
	const at = "eyJhbGciOiJFUzI1NiJ9.access.token"
	sum := sha256.Sum256([]byte(at))
	want := base64.RawURLEncoding.EncodeToString(sum[:16])
	if got := AtHash(at); got != want || got != "rUl0EvBS849iYvIfeZ1Ebw" {
		t.Fatalf("AtHash = %s, want %s", got, want)
	}
}

func TestIDToken(t *testing.T) {
	m, ks, _ := newMinter(t)
	access, _, err := m.Access(AccessClaims{Subject: "user-1", ClientID: "agent"})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := m.ID(IDClaims{Subject: "user-1", Audience: "agent", ACR: oauth.ACRPolicy, AuthTime: t0.Add(-time.Minute),
		AccessToken: access, AuthReqID: "req-1", Nonce: "n-1"})
	if err != nil {
		t.Fatal(err)
	}
	h, p := parts(t, tok)
	if !reflect.DeepEqual(h, map[string]any{"alg": "ES256", "typ": "JWT", "kid": ks.Current.ID}) {
		t.Errorf("header = %v", h)
	}
	want := map[string]any{
		"iss": issuer, "sub": "user-1", "aud": "agent", "iat": float64(t0.Unix()), "exp": float64(t0.Add(10 * time.Minute).Unix()),
		"auth_time": float64(t0.Add(-time.Minute).Unix()), "acr": oauth.ACRPolicy, "nonce": "n-1",
		"at_hash": AtHash(access), oauth.ClaimAuthReqID: "req-1",
	}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("payload = %v\nwant %v", p, want)
	}

	plain, err := m.ID(IDClaims{Subject: "user-1", Audience: "agent"})
	if err != nil {
		t.Fatal(err)
	}
	_, p = parts(t, plain)
	for _, absent := range []string{oauth.ClaimAuthReqID, "at_hash", "nonce", "auth_time", "acr"} {
		if v, ok := p[absent]; ok {
			t.Errorf("claim %s = %v, want it absent", absent, v)
		}
	}
	if _, err := m.ID(IDClaims{Subject: "user-1"}); err == nil {
		t.Error("ID without aud succeeded")
	}
}

// hintClient is the client the test's ID token hints were issued to.
const hintClient = "agent"

func TestVerifyIDTokenHint(t *testing.T) {
	m, ks, clk := newMinter(t)
	hint, err := m.ID(IDClaims{Subject: "user-1", Audience: "agent"})
	if err != nil {
		t.Fatal(err)
	}
	clk.now = clk.now.Add(24 * time.Hour) // long expired: still a valid hint
	if sub, err := m.VerifyIDTokenHint(hint, hintClient); err != nil || sub != "user-1" {
		t.Fatalf("VerifyIDTokenHint = %q, %v; want user-1", sub, err)
	}
	if _, err := m.VerifyIDTokenHint(hint, "another-agent"); err == nil {
		t.Fatal("an ID token issued to another client was accepted as a hint")
	}
	access, _, err := m.Access(AccessClaims{Subject: "user-1", ClientID: "agent"})
	if err != nil {
		t.Fatal(err)
	}
	if sub, err := m.VerifyIDTokenHint(access, hintClient); err == nil {
		t.Errorf("an access token passed as hint: sub %q", sub)
	}
	other := *m
	other.Issuer = "https://other.example"
	foreign, _ := other.ID(IDClaims{Subject: "user-1", Audience: "agent"})
	if _, err := m.VerifyIDTokenHint(foreign, hintClient); err == nil {
		t.Error("a hint from another issuer was accepted")
	}
	forged := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"iss": issuer, "sub": "admin"})
	forged.Header["kid"] = ks.Current.ID
	forgedTok, _ := forged.SignedString(mustKey(t).Private)
	if _, err := m.VerifyIDTokenHint(forgedTok, hintClient); err == nil {
		t.Error("a hint signed by another key was accepted")
	}
	for range MaxPrevious + 1 {
		*ks = ks.Rotate(mustKey(t))
	}
	if _, err := m.VerifyIDTokenHint(hint, hintClient); err == nil {
		t.Error("a hint signed by a retired key was accepted")
	}
}

func BenchmarkAccess(b *testing.B) {
	m, _, _ := newMinter(b)
	c := fullClaims()
	for b.Loop() {
		if _, _, err := m.Access(c); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	m, _, _ := newMinter(b)
	tok, _, err := m.Access(fullClaims())
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := m.Verify(tok); err != nil {
			b.Fatal(err)
		}
	}
}
