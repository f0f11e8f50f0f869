package rar

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"slices"

	"github.com/gowebpki/jcs"
)

// Amount returns the sum of the entries' amounts (JSON numbers or decimal
// strings), 0 when there are none. It is the rules' action.amount.
func Amount(ds []Detail) float64 {
	sum := new(big.Rat)
	for _, d := range ds {
		if r, ok := ratOf(d["amount"]); ok {
			sum.Add(sum, r)
		}
	}
	f, _ := sum.Float64()
	return f
}

// Currency returns the first entry's currency, "" when none has one.
func Currency(ds []Detail) string {
	for _, d := range ds {
		if c, ok := d["currency"].(string); ok && c != "" {
			return c
		}
	}
	return ""
}

// Locations returns the union of the entries' locations in order of first
// appearance, without duplicates: the access token audience (RFC 9396 §9).
func Locations(ds []Detail) []string {
	var out []string
	for _, d := range ds {
		for _, l := range stringsOf(d["locations"]) {
			if !slices.Contains(out, l) {
				out = append(out, l)
			}
		}
	}
	return out
}

// Canonical returns the RFC 8785 canonical JSON of the array; no entries
// give "[]".
func Canonical(ds []Detail) ([]byte, error) {
	if len(ds) == 0 {
		return []byte("[]"), nil
	}
	b, err := json.Marshal(ds)
	if err != nil {
		return nil, err
	}
	return jcs.Transform(b) // RFC 8785 §3.2: sorted members, ES6 numbers, minimal escapes
}

// Hash returns base64url (no padding) of SHA-256 of Canonical: the ad_hash
// a device signs. It returns "" for entries that have no canonical form,
// which never matches a device's hash; Parse never returns such entries.
func Hash(ds []Detail) string {
	b, err := Canonical(ds)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// stringsOf returns the string elements of a JSON array value.
func stringsOf(v any) []string {
	switch l := v.(type) {
	case []string:
		return l
	case []any:
		out := make([]string, 0, len(l))
		for _, e := range l {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}
