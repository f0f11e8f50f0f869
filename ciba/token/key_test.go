package token

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

func mustKey(t testing.TB) Key {
	t.Helper()
	k, err := GenerateKey(t0)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func b64sha256(s string) string {
	sum := sha256.Sum256([]byte(s))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func TestThumbprintRFC7638Example(t *testing.T) {
	// RFC 7638 §3.1.
	jwk := map[string]any{
		"kty": "RSA",
		"n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn6" +
			"4tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n9" +
			"1CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
		"e":   "AQAB",
		"alg": "RS256",
		"kid": "2011-04-29",
	}
	got, err := Thumbprint(jwk)
	if err != nil {
		t.Fatal(err)
	}
	if got != "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs" {
		t.Fatalf("Thumbprint = %s", got)
	}
}

func TestThumbprintECAndOKP(t *testing.T) {
	const x, y = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"
	ec := map[string]any{"y": y, "x": x, "kty": "EC", "crv": "P-256", "use": "sig", "kid": "ignored"}
	got, err := Thumbprint(ec)
	if err != nil {
		t.Fatal(err)
	}
	if want := b64sha256(`{"crv":"P-256","kty":"EC","x":"` + x + `","y":"` + y + `"}`); got != want {
		t.Errorf("EC thumbprint = %s, want %s", got, want)
	}
	const ox = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo" // RFC 8037 §A.2
	got, err = Thumbprint(map[string]any{"kty": "OKP", "crv": "Ed25519", "x": ox})
	if err != nil {
		t.Fatal(err)
	}
	// RFC 8037 §A.3 gives this thumbprint for that key.
	if want := "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"; got != want || got != b64sha256(`{"crv":"Ed25519","kty":"OKP","x":"`+ox+`"}`) {
		t.Errorf("OKP thumbprint = %s, want %s", got, want)
	}
}

func TestThumbprintRefusals(t *testing.T) {
	for name, jwk := range map[string]map[string]any{
		"no kty":          {"crv": "P-256", "x": "AA", "y": "AA"},
		"oct":             {"kty": "oct", "k": "AA"},
		"missing y":       {"kty": "EC", "crv": "P-256", "x": "AA"},
		"x not string":    {"kty": "EC", "crv": "P-256", "x": 1, "y": "AA"},
		"unknown curve":   {"kty": "EC", "crv": "secp256k1", "x": "AA", "y": "AA"},
		"x not base64url": {"kty": "EC", "crv": "P-256", "x": `A"A`, "y": "AA"},
		"padded":          {"kty": "OKP", "crv": "Ed25519", "x": "AA=="},
	} {
		if tp, err := Thumbprint(jwk); err == nil {
			t.Errorf("%s: Thumbprint = %s, want an error", name, tp)
		}
	}
}

func TestGenerateKeyKidIsThumbprint(t *testing.T) {
	k := mustKey(t)
	b, err := k.Private.PublicKey.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding
	want := b64sha256(`{"crv":"P-256","kty":"EC","x":"` + enc.EncodeToString(b[1:33]) + `","y":"` + enc.EncodeToString(b[33:]) + `"}`)
	if k.ID != want || !k.Created.Equal(t0) {
		t.Fatalf("key ID %s created %v, want %s %v", k.ID, k.Created, want, t0)
	}
}

func TestKeyMarshalRoundTrip(t *testing.T) {
	k := mustKey(t)
	b, err := k.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseKey(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != k.ID || !got.Created.Equal(k.Created) || !got.Private.Equal(k.Private) {
		t.Fatalf("ParseKey = %+v, want %+v", got, k)
	}

	var s map[string]any
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	s["kid"] = mustKey(t).ID
	tampered, _ := json.Marshal(s)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(p384)
	other, _ := json.Marshal(map[string]any{"kid": "x", "created": t0, "pkcs8": der})
	for name, in := range map[string][]byte{"kid of another key": tampered, "P-384": other, "garbage": []byte("{"), "empty": nil} {
		if _, err := ParseKey(in); err == nil {
			t.Errorf("ParseKey(%s) succeeded, want an error", name)
		}
	}
	if _, err := (Key{}).MarshalBinary(); err == nil {
		t.Error("MarshalBinary of an empty key succeeded")
	}
}

func TestRotateAndJWKS(t *testing.T) {
	k1, k2, k3, k4 := mustKey(t), mustKey(t), mustKey(t), mustKey(t)
	ks := KeySet{}.Rotate(k1)
	if ks.Current.ID != k1.ID || len(ks.Previous) != 0 {
		t.Fatalf("first rotation: %+v", ks)
	}
	ks = ks.Rotate(k2).Rotate(k3)
	before := ks
	ks = ks.Rotate(k4)
	if got := ids(ks); got != strings.Join([]string{k4.ID, k3.ID, k2.ID}, ",") {
		t.Fatalf("after four rotations ids = %s", got)
	}
	if ids(before) != strings.Join([]string{k3.ID, k2.ID, k1.ID}, ",") {
		t.Fatalf("Rotate changed the set it was called on: %s", ids(before))
	}

	set := ks.JWKS()
	if len(set.Keys) != 3 {
		t.Fatalf("JWKS has %d keys, want 3", len(set.Keys))
	}
	for i, k := range []Key{k4, k3, k2} {
		j := set.Keys[i]
		b, _ := k.Private.PublicKey.Bytes()
		enc := base64.RawURLEncoding
		if j.Kty != "EC" || j.Crv != "P-256" || j.Use != "sig" || j.Alg != "ES256" || j.Kid != k.ID ||
			j.X != enc.EncodeToString(b[1:33]) || j.Y != enc.EncodeToString(b[33:]) {
			t.Errorf("JWKS key %d = %+v", i, j)
		}
	}
	raw, _ := json.Marshal(set)
	var generic struct{ Keys []map[string]any }
	if err := json.Unmarshal(raw, &generic); err != nil {
		t.Fatal(err)
	}
	for _, m := range generic.Keys {
		if _, ok := m["d"]; ok || len(m) != 7 {
			t.Errorf("published JWK has members %v", m)
		}
		if tp, err := Thumbprint(m); err != nil || tp != m["kid"] {
			t.Errorf("published kid %v, thumbprint %s (%v)", m["kid"], tp, err)
		}
	}
	if empty, _ := json.Marshal(KeySet{}.JWKS()); string(empty) != `{"keys":[]}` {
		t.Errorf("empty JWKS = %s", empty)
	}
}

func ids(ks KeySet) string {
	out := []string{ks.Current.ID}
	for _, k := range ks.Previous {
		out = append(out, k.ID)
	}
	return strings.Join(out, ",")
}
