package phone

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/binary"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	webpush "github.com/SherClockHolmes/webpush-go"
	"github.com/golang-jwt/jwt/v5"
)

const testEndpoint = "https://push.example.net/push/abc"

// captured is a push request as webpush-go sent it.
type captured struct {
	header http.Header
	body   []byte
}

// captureClient is webpush-go's HTTP client: it keeps the request and
// answers 201.
type captureClient struct{ got *captured }

func (c captureClient) Do(r *http.Request) (*http.Response, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	*c.got = captured{header: r.Header.Clone(), body: body}
	return &http.Response{StatusCode: 201, Body: io.NopCloser(strings.NewReader("")), Header: http.Header{}}, nil
}

// receiver is a user agent's push keys.
type receiver struct {
	priv *ecdh.PrivateKey
	auth []byte
}

func newReceiver(t *testing.T) receiver {
	t.Helper()
	priv, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	auth := make([]byte, 16)
	_, _ = rand.Read(auth)
	return receiver{priv: priv, auth: auth}
}

// sendWithWebpushGo encrypts and signs payload for rc with the third-party
// library and returns what it put on the wire.
func sendWithWebpushGo(t *testing.T, rc receiver, payload []byte, vapidPriv, vapidPub string) captured {
	t.Helper()
	var got captured
	_, err := webpush.SendNotification(payload, &webpush.Subscription{
		Endpoint: testEndpoint,
		Keys:     webpush.Keys{P256dh: b64.EncodeToString(rc.priv.PublicKey().Bytes()), Auth: b64.EncodeToString(rc.auth)},
	}, &webpush.Options{HTTPClient: captureClient{&got}, Subscriber: "ops@example.com", TTL: 30,
		VAPIDPublicKey: vapidPub, VAPIDPrivateKey: vapidPriv})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestDecryptAndVerifyWhatWebpushGoSends(t *testing.T) {
	vapidPriv, vapidPub, _ := webpush.GenerateVAPIDKeys()
	rc := newReceiver(t)
	payload := []byte(`{"type":"approval_request","id":"req-1","binding_message":"Pay 25 € ✓"}`)
	got := sendWithWebpushGo(t, rc, payload, vapidPriv, vapidPub)

	plain, err := DecryptPush(got.body, rc.priv, rc.auth)
	if err != nil {
		t.Fatalf("DecryptPush: %v", err)
	}
	if !bytes.Equal(plain, payload) {
		t.Errorf("plaintext %q, want %q", plain, payload)
	}
	k, err := VerifyVAPID(got.header.Get("Authorization"), testEndpoint, time.Now())
	if err != nil {
		t.Fatalf("VerifyVAPID: %v", err)
	}
	if k != vapidPub {
		t.Errorf("VerifyVAPID key %q, want %q", k, vapidPub)
	}
	// The endpoint's path does not matter, its origin does (RFC 8292 §2).
	if _, err := VerifyVAPID(got.header.Get("Authorization"), "https://PUSH.example.net/other", time.Now()); err != nil {
		t.Errorf("same origin, other path: %v", err)
	}
}

func TestDecryptPushRefuses(t *testing.T) {
	vapidPriv, vapidPub, _ := webpush.GenerateVAPIDKeys()
	rc := newReceiver(t)
	body := sendWithWebpushGo(t, rc, []byte(`{"type":"x"}`), vapidPriv, vapidPub).body
	other := newReceiver(t)

	flip := bytes.Clone(body)
	flip[len(flip)-1] ^= 1
	smallRS := bytes.Clone(body)
	binary.BigEndian.PutUint32(smallRS[16:20], 100) // the one record no longer fits
	shortID := bytes.Clone(body)
	shortID[20] = 33

	cases := map[string]struct {
		body []byte
		priv *ecdh.PrivateKey
		auth []byte
	}{
		"wrong auth secret":  {body, rc.priv, other.auth},
		"wrong receiver key": {body, other.priv, rc.auth},
		"tampered record":    {flip, rc.priv, rc.auth},
		"two records":        {smallRS, rc.priv, rc.auth},
		"keyid not 65 bytes": {shortID, rc.priv, rc.auth},
		"truncated header":   {body[:40], rc.priv, rc.auth},
		"empty":              {nil, rc.priv, rc.auth},
		"short auth secret":  {body, rc.priv, rc.auth[:8]},
	}
	for name, c := range cases {
		if plain, err := DecryptPush(c.body, c.priv, c.auth); err == nil {
			t.Errorf("%s: decrypted %q, want an error", name, plain)
		}
	}
}

// vapidHeader builds a VAPID header by hand, for the cases webpush-go will
// not produce.
func vapidHeader(t *testing.T, key *ecdsa.PrivateKey, method jwt.SigningMethod, signKey any, claims jwt.MapClaims) string {
	t.Helper()
	token, err := jwt.NewWithClaims(method, claims).SignedString(signKey)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := key.PublicKey.Bytes()
	return "vapid t=" + token + ", k=" + b64.EncodeToString(pub)
}

func TestVerifyVAPID(t *testing.T) {
	now := time.Now()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	good := jwt.MapClaims{"aud": "https://push.example.net", "exp": now.Add(12 * time.Hour).Unix(), "sub": "mailto:ops@example.com"}
	with := func(k string, v any) jwt.MapClaims {
		c := jwt.MapClaims{}
		for name, val := range good {
			c[name] = val
		}
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	es := jwt.SigningMethodES256
	goodHeader := vapidHeader(t, key, es, key, good)
	pub, _ := key.PublicKey.Bytes()
	token := strings.TrimSuffix(strings.TrimPrefix(goodHeader, "vapid t="), ", k="+b64.EncodeToString(pub))

	accepted := map[string]string{
		"as built":                goodHeader,
		"params reversed, quoted": `Vapid k="` + b64.EncodeToString(pub) + `",t="` + token + `"`,
		"https contact":           vapidHeader(t, key, es, key, with("sub", "https://example.com/contact")),
	}
	for name, h := range accepted {
		k, err := VerifyVAPID(h, testEndpoint, now)
		if err != nil || k != b64.EncodeToString(pub) {
			t.Errorf("%s: VerifyVAPID = %q, %v; want the key", name, k, err)
		}
	}

	refused := map[string]string{
		"other origin":          vapidHeader(t, key, es, key, with("aud", "https://evil.example")),
		"aud with path":         vapidHeader(t, key, es, key, with("aud", testEndpoint)),
		"expired":               vapidHeader(t, key, es, key, with("exp", now.Add(-time.Minute).Unix())),
		"exp past 24 h":         vapidHeader(t, key, es, key, with("exp", now.Add(25*time.Hour).Unix())),
		"no exp":                vapidHeader(t, key, es, key, with("exp", nil)),
		"no sub":                vapidHeader(t, key, es, key, with("sub", nil)),
		"sub without mailto":    vapidHeader(t, key, es, key, with("sub", "ops@example.com")),
		"signed by another key": vapidHeader(t, key, es, otherKey, good),
		"HS256":                 vapidHeader(t, key, jwt.SigningMethodHS256, pub, good),
		"bearer scheme":         strings.Replace(goodHeader, "vapid", "Bearer", 1),
		"no k":                  "vapid t=" + token,
		"no t":                  "vapid k=" + b64.EncodeToString(pub),
		"k not a point":         "vapid t=" + token + ", k=" + b64.EncodeToString(make([]byte, 65)),
		"empty":                 "",
	}
	for name, h := range refused {
		if k, err := VerifyVAPID(h, testEndpoint, now); err == nil {
			t.Errorf("%s: VerifyVAPID accepted (k=%q)", name, k)
		}
	}
}
