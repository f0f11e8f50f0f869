package phone

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestBindingMessageHash(t *testing.T) {
	cases := map[string]string{
		"":                        "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU",
		"Pay 25 000 € to Ünïcode": "5IBVrfp2O3d_XDfd9pFt58zLnZ3JZEknbt8u2kBwyUg",
	}
	for msg, want := range cases {
		if got := BindingMessageHash(msg); got != want {
			t.Errorf("BindingMessageHash(%q) = %s, want %s", msg, got, want)
		}
	}
}

func TestAuthorizationDetailsHash(t *testing.T) {
	const emptyArray = "T1PNoYwrqgwDVLtfmj7L5e0Sq02OEbqHPC8RFhICuUU" // SHA-256 of "[]"
	cases := []struct {
		raw, want string
	}{
		{"", emptyArray},
		{"null", emptyArray},
		{" [ ] ", emptyArray},
		// RFC 8785: members sorted, whitespace dropped, 1 stays 1.
		{`[ {"b": 1, "a": "x"} ]`, "XbdcPd1rVqlaC9LqLeSO36md5T6lpyEJHXf5AVeOuXM"},
		// RFC 8785 §3.2.2.3: 25000.00 -> 25000, 1e3 -> 1000; non-ASCII kept as UTF-8.
		{`[{"type":"payment_initiation","currency":"EUR","amount":25000.00,"creditorName":"\u00dcn\u00efcode \u20ac","nested":{"z":1e3,"a":[true,null]}}]`,
			"8JOiXMM9TCItF2UPkQunroV3k8yTVeR5aiD4bboz_LA"},
	}
	for _, c := range cases {
		got, err := AuthorizationDetailsHash(json.RawMessage(c.raw))
		if err != nil || got != c.want {
			t.Errorf("AuthorizationDetailsHash(%s) = %s, %v; want %s", c.raw, got, err, c.want)
		}
	}
	for _, bad := range []string{`{"type":"x"}`, `[1,`, `"[]"`} {
		if got, err := AuthorizationDetailsHash(json.RawMessage(bad)); err == nil {
			t.Errorf("AuthorizationDetailsHash(%s) = %s, want an error", bad, got)
		}
	}
}

// parseDeviceSigned verifies a JWT with the phone's public key.
func parseDeviceSigned(t *testing.T, p *Phone, token string, now time.Time) (*jwt.Token, jwt.MapClaims) {
	t.Helper()
	claims := jwt.MapClaims{}
	parsed, err := jwt.ParseWithClaims(token, claims, func(*jwt.Token) (any, error) { return &p.keys.device.PublicKey, nil },
		jwt.WithValidMethods([]string{"ES256"}), jwt.WithTimeFunc(func() time.Time { return now }))
	if err != nil {
		t.Fatalf("parsing %s: %v", token, err)
	}
	return parsed, claims
}

func TestDecisionAndDeviceJWTClaims(t *testing.T) {
	f := newFakeServer(t)
	p := enrolledPhone(t, f, nil)
	now := time.Unix(1768478400, 0) // 2026-01-15T12:00:00Z
	var view Request
	if err := json.Unmarshal([]byte(viewPayment), &view); err != nil {
		t.Fatal(err)
	}

	token, err := p.DecisionJWT(&view, Approve, now)
	if err != nil {
		t.Fatal(err)
	}
	parsed, c := parseDeviceSigned(t, p, token, now)
	if parsed.Header["typ"] != "JWT" || parsed.Header["alg"] != "ES256" {
		t.Errorf("header %v, want typ JWT alg ES256", parsed.Header)
	}
	want := map[string]any{
		"iss": "dev-1", "aud": f.issuer(), "req": "req-pay", "decision": "approve",
		"bm_hash": "5IBVrfp2O3d_XDfd9pFt58zLnZ3JZEknbt8u2kBwyUg",
		"ad_hash": "8JOiXMM9TCItF2UPkQunroV3k8yTVeR5aiD4bboz_LA",
		"iat":     float64(1768478400), "exp": float64(1768478400 + 120),
	}
	for k, v := range want {
		if c[k] != v {
			t.Errorf("decision claim %s = %v, want %v", k, c[k], v)
		}
	}
	jti, _ := c["jti"].(string)
	if raw, err := b64.DecodeString(jti); err != nil || len(raw) < 16 {
		t.Errorf("jti %q is not 128+ random bits", jti)
	}
	if len(c) != len(want)+1 {
		t.Errorf("decision claims %v, want exactly %d", c, len(want)+1)
	}
	again, _ := p.DecisionJWT(&view, Approve, now)
	if _, c2 := parseDeviceSigned(t, p, again, now); c2["jti"] == c["jti"] {
		t.Error("two decisions share a jti")
	}

	// No binding message and no authorization_details: hashes of "" and "[]".
	_, c = parseDeviceSigned(t, p, must(p.DecisionJWT(&Request{ID: "req-read"}, Deny, now)), now)
	if c["decision"] != "deny" || c["bm_hash"] != "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU" || c["ad_hash"] != "T1PNoYwrqgwDVLtfmj7L5e0Sq02OEbqHPC8RFhICuUU" {
		t.Errorf("empty request claims %v", c)
	}

	if _, err := p.DecisionJWT(&view, "maybe", now); err == nil {
		t.Error("decision maybe was signed")
	}

	parsed, c = parseDeviceSigned(t, p, must(p.DeviceJWT(now)), now)
	want = map[string]any{"iss": "dev-1", "aud": f.issuer(), "iat": float64(1768478400), "exp": float64(1768478400 + 30)}
	for k, v := range want {
		if c[k] != v {
			t.Errorf("device claim %s = %v, want %v", k, c[k], v)
		}
	}
	if parsed.Header["typ"] != "JWT" || len(c) != 5 || c["jti"] == "" {
		t.Errorf("device JWT header %v claims %v", parsed.Header, c)
	}
}

func TestJWTsNeedEnrollment(t *testing.T) {
	p, err := New("http://127.0.0.1:1", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.DeviceJWT(time.Now()); err == nil {
		t.Error("DeviceJWT before enrollment succeeded")
	}
	if _, err := p.DecisionJWT(&Request{ID: "x"}, Approve, time.Now()); err == nil {
		t.Error("DecisionJWT before enrollment succeeded")
	}
}

func must(s string, err error) string {
	if err != nil {
		panic(err)
	}
	return s
}
