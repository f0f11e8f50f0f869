package rar

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

// refusedRunes is the exact set HiddenRune refuses besides the C0/C1
// controls: the contract of binding_message and authorization_details.
var refusedRunes = []rune{'\u2028', '\u2029', '\u061c', '\u200e', '\u200f',
	'\u202a', '\u202b', '\u202c', '\u202d', '\u202e', '\u2066', '\u2067', '\u2068', '\u2069',
	'\u200b', '\u2060', '\u2061', '\u2062', '\u2063', '\u2064', '\ufeff', 0xE0000, 0xE0001, 0xE0041, 0xE007F}

func TestHiddenRune(t *testing.T) {
	refused := append([]rune{0, '\t', '\n', '\r', 0x1b, 0x7f, 0x80, 0x9f}, refusedRunes...)
	for _, r := range refused {
		s := "Pay " + string(r) + "ACME"
		got, _, ok := HiddenRune(s)
		if !ok || got != r {
			t.Errorf("HiddenRune(%q) = %U, %v; want %U refused", s, got, ok, r)
		}
	}
	// Neighbours of the refused ranges, joiners scripts and emoji need,
	// and ordinary text in several scripts stay allowed.
	allowed := []string{"Pay ACME 250 €", "\u200c", "\u200d", "👩\u200d💻", "می\u200cخواهم", "שלום", "مرحبا",
		"Trip ✈ 42", "\u2027", "\u202f", "\u2065", "\u206a", "\u200a", "\ufefe", "\ufff0", string(rune(0xDFFFF)), string(rune(0xE0080)),
		"\u00a0", "日本語"}
	for _, s := range allowed {
		if r, why, ok := HiddenRune(s); ok {
			t.Errorf("HiddenRune(%q) refused %U (%s)", s, r, why)
		}
	}
	if d := DescribeHidden("Pay \u202eRUE 00052 EMCA"); d != "U+202E, a bidirectional control" {
		t.Errorf("DescribeHidden = %q", d)
	}
}

// TestParseRefusesHiddenCharacters puts each refused character in each
// kind of string member, nested ones included.
func TestParseRefusesHiddenCharacters(t *testing.T) {
	places := []struct{ name, format, path string }{
		{"creditor name", `[{"type":"payment_initiation","amount":10,"currency":"EUR","creditor":{"name":%s}}]`, "authorization_details[0].creditor.name"},
		{"remittance", `[{"type":"payment_initiation","amount":10,"currency":"EUR","remittance_information":%s}]`, "authorization_details[0].remittance_information"},
		{"action", `[{"type":"agent_action","action":%s,"resource":"mail"}]`, "authorization_details[0].action"},
		{"resource, second entry", `[{"type":"agent_action","action":"read","resource":"mail"},{"type":"agent_action","action":"read","resource":%s}]`, "authorization_details[1].resource"},
		{"actions list", `[{"type":"agent_action","action":"read","resource":"mail","actions":["read",%s]}]`, "authorization_details[0].actions[1]"},
		{"identifier", `[{"type":"agent_action","action":"read","resource":"mail","identifier":%s}]`, "authorization_details[0].identifier"},
		{"unknown member, deep", `[{"type":"agent_action","action":"read","resource":"mail","x":{"y":[%s]}}]`, "authorization_details[0].x.y[0]"},
	}
	for _, r := range append([]rune{0x07, 0x85}, refusedRunes...) {
		v, _ := json.Marshal("ACME" + string(r) + " Ltd")
		for _, p := range places {
			_, err := Parse(fmt.Sprintf(p.format, v))
			wantRefusal(t, err, fmt.Sprintf("%s contains U+%04X", p.path, r))
		}
	}
	// The JSON escape form is the same character.
	_, err := Parse(`[{"type":"payment_initiation","amount":10,"currency":"EUR","creditor":{"name":"Pay \u202eRUE 00052 EMCA"}}]`)
	wantRefusal(t, err, "creditor.name contains U+202E, a bidirectional control")
	_, err = Parse(`[{"type":"agent_action","action":"read","resource":"mail","\u200bx":"y"}]`)
	wantRefusal(t, err, "has a member name that contains U+200B")
	// Joiners stay allowed.
	if _, err := Parse(`[{"type":"payment_initiation","amount":10,"currency":"EUR","creditor":{"name":"👩\u200d💻 می\u200cخواهم"}}]`); err != nil {
		t.Fatalf("joiners refused: %v", err)
	}
}

// FuzzParse: Parse never panics, accepts only entries of a registered
// type, never lets a refused character through, and is deterministic.
func FuzzParse(f *testing.F) {
	for _, s := range []string{``, `[]`, `[{"type":"agent_action","action":"read","resource":"mail"}]`,
		`[{"type":"payment_initiation","amount":"12.50","currency":"EUR","creditor":{"name":"ACME","iban":"DE89"}}]`,
		`[{"type":"payment_initiation","amount":1e400,"currency":"EUR"}]`,
		`[{"type":"payment_initiation","amount":10,"currency":"EUR","creditor":{"name":"Pay \u202eRUE"}}]`,
		"[{\"type\":\"agent_action\",\"action\":\"r\u200bead\",\"resource\":\"m\"}]",
		`[{"type":"agent_action","action":"a","resource":"r","locations":["https://api.example/"]}]`,
		`[{"type":"agent_action","action":"a","action":"b","resource":"r"}]`, `[{`, `{}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		ds, err := Parse(raw)
		ds2, err2 := Parse(raw)
		if (err == nil) != (err2 == nil) || len(ds) != len(ds2) {
			t.Fatalf("Parse is not deterministic on %q", raw)
		}
		if err != nil {
			return
		}
		if len(ds) > MaxEntries || len(raw) > MaxBytes {
			t.Fatalf("bounds not enforced: %d entries, %d bytes", len(ds), len(raw))
		}
		for _, d := range ds {
			if _, ok := registered[d["type"].(string)]; !ok {
				t.Fatalf("accepted unregistered type %v", d["type"])
			}
		}
		b, _ := json.Marshal(ds)
		var back any
		_ = json.Unmarshal(b, &back)
		if d := hiddenIn(back, "x"); d != "" {
			t.Fatalf("accepted %q: %s", raw, d)
		}
		if _, err := Canonical(ds); err != nil {
			t.Fatalf("accepted entries have no canonical form: %v", err)
		}
	})
}

// FuzzHiddenRune: HiddenRune agrees with a rune-by-rune reading of the
// set, and what it allows has no refused character under any reading.
func FuzzHiddenRune(f *testing.F) {
	for _, s := range []string{"", "Pay ACME", "Pay \u202eRUE 00052 EMCA", "a\u200db", "\U000E0041", "\xff\xfe", "\u2069"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, _, found := HiddenRune(s)
		first := rune(-1)
		for _, c := range s {
			if hidden(c) != "" {
				first = c
				break
			}
		}
		if found != (first >= 0) || (found && r != first) {
			t.Fatalf("HiddenRune(%q) = %U %v, want %U", s, r, found, first)
		}
		if !found && utf8.ValidString(s) && strings.ContainsAny(s, "\u202e\u2066\u2067\u2068\u2069\u200b\ufeff\u061c\u200e\u200f") {
			t.Fatalf("HiddenRune let a bidi or invisible character through in %q", s)
		}
	})
}
