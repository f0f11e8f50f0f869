package ciba

import (
	"errors"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/countersign/countersign/ciba/oauth"
	"github.com/countersign/countersign/ciba/rar"
)

// FuzzBindingMessage: checkBindingMessage accepts only 1–64 code points of
// valid UTF-8 without a refused character, and every refusal is a 400
// invalid_binding_message whose description has no control character.
func FuzzBindingMessage(f *testing.F) {
	for _, s := range []string{"Trip ✈ 42", "", "Pay \u202eRUE 00052 EMCA", "a\u200db", "\U000E0041", "\xff",
		"0123456789012345678901234567890123456789012345678901234567890123", "\u2069", "e\u0301"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, m string) {
		err := checkBindingMessage(m)
		_, _, hidden := rar.HiddenRune(m)
		n := utf8.RuneCountInString(m)
		want := utf8.ValidString(m) && n >= 1 && n <= 64 && !hidden
		if (err == nil) != want {
			t.Fatalf("checkBindingMessage(%q) = %v, want accepted %v", m, err, want)
		}
		if err == nil {
			return
		}
		var oe *oauth.Error
		if !errors.As(err, &oe) || oe.Code != oauth.InvalidBindingMessage || oe.Status != 400 {
			t.Fatalf("refusal %v is not 400 invalid_binding_message", err)
		}
		for _, r := range oe.Description {
			if unicode.IsControl(r) {
				t.Fatalf("description %q has a control character", oe.Description)
			}
		}
	})
}
