package rar

import (
	"crypto/sha256"
	"encoding/base64"
	"reflect"
	"testing"

	"github.com/gowebpki/jcs"
)

func TestAmountCurrencyLocations(t *testing.T) {
	ds := mustParse(t, `[
		{"type":"payment_initiation","amount":"10.25","currency":"EUR","locations":["https://a.example","https://b.example"]},
		{"type":"agent_action","action":"a","resource":"r","locations":["https://b.example","https://c.example"]},
		{"type":"payment_initiation","amount":0.5,"currency":"USD","locations":["https://a.example"]}]`)
	if got := Amount(ds); got != 10.75 {
		t.Errorf("Amount = %v, want 10.75", got)
	}
	if got := Currency(ds); got != "EUR" {
		t.Errorf("Currency = %q, want EUR", got)
	}
	want := []string{"https://a.example", "https://b.example", "https://c.example"}
	if got := Locations(ds); !reflect.DeepEqual(got, want) {
		t.Errorf("Locations = %v, want %v", got, want)
	}
	none := mustParse(t, `[{"type":"agent_action","action":"a","resource":"r"}]`)
	if Amount(none) != 0 || Currency(none) != "" || Locations(none) != nil {
		t.Errorf("no payment: Amount %v Currency %q Locations %v, want 0, \"\", nil", Amount(none), Currency(none), Locations(none))
	}
}

func TestCanonical(t *testing.T) {
	raw := `[ {"type":"payment_initiation", "currency":"EUR","amount":10.50,
		"creditor":{"name":"Zoë <&>","iban":"X"}} ]`
	got, err := Canonical(mustParse(t, raw))
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"amount":10.5,"creditor":{"iban":"X","name":"Zoë <&>"},"currency":"EUR","type":"payment_initiation"}]`
	if string(got) != want {
		t.Fatalf("Canonical = %s\nwant %s", got, want)
	}
	// The canonical form of the parsed entries is that of the raw input.
	direct, err := jcs.Transform([]byte(raw))
	if err != nil || string(direct) != want {
		t.Fatalf("jcs.Transform(raw) = %s, %v", direct, err)
	}
	for _, ds := range [][]Detail{nil, {}} {
		if b, err := Canonical(ds); err != nil || string(b) != "[]" {
			t.Errorf("Canonical(%#v) = %s, %v; want []", ds, b, err)
		}
	}
}

func TestHash(t *testing.T) {
	empty := sha256.Sum256([]byte("[]"))
	if got, want := Hash(nil), base64.RawURLEncoding.EncodeToString(empty[:]); got != want || got != "T1PNoYwrqgwDVLtfmj7L5e0Sq02OEbqHPC8RFhICuUU" {
		t.Errorf("Hash(nil) = %s, want %s", got, want)
	}
	ds := mustParse(t, `[{"type":"payment_initiation","amount":10.50,"currency":"EUR"}]`)
	if got := Hash(ds); got != "n-1l0jlyhHMZhMXvYGejtStxKu2cbKNRYetamENOPxg" {
		t.Errorf("Hash = %s", got)
	}
	// Member order and number spelling do not change the hash.
	same := mustParse(t, `[{"currency":"EUR","amount":1.050e1,"type":"payment_initiation"}]`)
	if Hash(same) != Hash(ds) {
		t.Errorf("Hash differs for the same canonical JSON")
	}
	if got := Hash([]Detail{{"f": func() {}}}); got != "" {
		t.Errorf("Hash of unencodable entries = %q, want empty", got)
	}
}
