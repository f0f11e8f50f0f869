package rar

import (
	"fmt"
	"maps"
	"slices"
	"unicode"
)

// HiddenRune returns the first character of s that could make text shown
// to the user read differently from what it says, and why it is refused.
// It is the one character rule of binding_message and of every string in
// authorization_details: "Pay \u202eRUE 00052 EMCA" shows as another
// payment, a zero-width space hides a difference between two names.
//
// Refused: control characters (Cc) and the line and paragraph separators;
// the bidirectional controls U+061C, U+200E, U+200F, U+202A–U+202E,
// U+2066–U+2069; the invisible U+200B, U+2060–U+2064, U+FEFF; the tag
// characters U+E0000–U+E007F. U+200C and U+200D (zero-width non-joiner
// and joiner) stay allowed: scripts such as Persian and emoji sequences
// need them.
func HiddenRune(s string) (r rune, why string, found bool) {
	for _, r := range s {
		if why := hidden(r); why != "" {
			return r, why, true
		}
	}
	return 0, "", false
}

func hidden(r rune) string {
	switch {
	case unicode.IsControl(r), r == '\u2028', r == '\u2029':
		return "a control character"
	case r == '\u061c', r == '\u200e', r == '\u200f',
		r >= '\u202a' && r <= '\u202e', r >= '\u2066' && r <= '\u2069':
		return "a bidirectional control"
	case r == '\u200b', r >= '\u2060' && r <= '\u2064', r == '\ufeff':
		return "an invisible character"
	case r >= 0xE0000 && r <= 0xE007F:
		return "a tag character"
	}
	return ""
}

// DescribeHidden says which character of s is refused, for an error
// description ("U+202E, a bidirectional control"); "" when none is.
func DescribeHidden(s string) string {
	r, why, ok := HiddenRune(s)
	if !ok {
		return ""
	}
	return fmt.Sprintf("U+%04X, %s", r, why)
}

// hiddenIn walks a decoded JSON value and describes the first refused
// character in any string, member names included, with its path.
func hiddenIn(v any, path string) string {
	switch x := v.(type) {
	case string:
		if d := DescribeHidden(x); d != "" {
			return path + " contains " + d
		}
	case []any:
		for i, e := range x {
			if d := hiddenIn(e, fmt.Sprintf("%s[%d]", path, i)); d != "" {
				return d
			}
		}
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(x)) {
			if d := DescribeHidden(k); d != "" {
				return fmt.Sprintf("%s has a member name that contains %s", path, d)
			}
			if d := hiddenIn(x[k], path+"."+k); d != "" {
				return d
			}
		}
	}
	return ""
}
