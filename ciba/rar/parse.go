package rar

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/countersign/countersign/ciba/oauth"
	"github.com/gowebpki/jcs"
)

// Size bounds of an authorization_details parameter.
const (
	MaxEntries = 16
	MaxBytes   = 8 << 10
)

// Registered type names.
const (
	TypePaymentInitiation = "payment_initiation"
	TypeAgentAction       = "agent_action"
)

// Detail is one authorization_details entry, kept as sent: numbers are
// json.Number, objects map[string]any, arrays []any.
type Detail map[string]any

// check validates one member value and says what is wrong with it.
type check func(v any) string

type schema struct {
	members  map[string]check
	required []string
}

// RFC 9396 §2.2: common data fields, usable in every type.
var common = map[string]check{
	"locations":  uriList,
	"actions":    stringList,
	"datatypes":  stringList,
	"identifier": nonEmptyString,
	"privileges": stringList,
}

var registered = map[string]schema{
	TypePaymentInitiation: {
		members: map[string]check{
			"action":                 nonEmptyString,
			"amount":                 amount,
			"currency":               currency,
			"creditor":               creditor,
			"remittance_information": nonEmptyString,
		},
		required: []string{"amount", "currency"},
	},
	TypeAgentAction: {
		members: map[string]check{
			"action":   nonEmptyString,
			"resource": nonEmptyString,
		},
		required: []string{"action", "resource"},
	},
	TypeMCPToolCall: mcpToolCall,
}

// Types returns the registered types, for authorization_details_types_supported.
func Types() []string {
	return []string{TypePaymentInitiation, TypeAgentAction, TypeMCPToolCall, TypeIntentMandate}
}

func init() { registered[TypeIntentMandate] = intentMandate }

// Parse validates an authorization_details parameter and returns its
// entries. An empty string is an absent parameter (RFC 6749 §3.1) and
// yields no entries. Every refusal is *oauth.Error invalid_authorization_details.
func Parse(raw string) ([]Detail, error) {
	if raw == "" {
		return nil, nil // RFC 6749 §3.1: an empty parameter is an omitted one
	}
	if len(raw) > MaxBytes {
		return nil, refuse("authorization_details is longer than %d bytes", MaxBytes)
	}
	// RFC 8785 §3.1: the canonical form must exist (no duplicate member
	// names, valid UTF-8, finite numbers), or nobody could sign its hash.
	if _, err := jcs.Transform([]byte(raw)); err != nil {
		return nil, refuse("authorization_details is not valid JSON: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, refuse("authorization_details is not valid JSON")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, refuse("authorization_details has data after the JSON array")
	}
	list, ok := v.([]any)
	if !ok {
		return nil, refuse("authorization_details must be a JSON array") // RFC 9396 §2
	}
	// Every string is shown to the user as sent: refuse what would make
	// it read differently (HiddenRune), in every member, at any depth.
	if d := hiddenIn(list, "authorization_details"); d != "" {
		return nil, refuse("%s", d)
	}
	if len(list) > MaxEntries {
		return nil, refuse("authorization_details has more than %d entries", MaxEntries)
	}
	out := make([]Detail, 0, len(list))
	for i, e := range list {
		obj, ok := e.(map[string]any)
		if !ok {
			return nil, refuse("authorization_details[%d] must be a JSON object", i) // RFC 9396 §2
		}
		if msg := validate(obj); msg != "" {
			return nil, refuse("authorization_details[%d]: %s", i, msg)
		}
		out = append(out, Detail(obj))
	}
	if IsMandate(out) && len(out) > 1 {
		return nil, refuse("an intent_mandate must be the only entry of its request")
	}
	return out, nil
}

func refuse(format string, args ...any) *oauth.Error {
	return oauth.New(oauth.InvalidAuthorizationDetails, format, args...)
}

// validate returns what is wrong with one entry, "" when nothing is.
func validate(d map[string]any) string {
	t, ok := d["type"].(string)
	if !ok || t == "" {
		return "type is required and must be a string" // RFC 9396 §2: type is REQUIRED
	}
	s, ok := registered[t]
	if !ok {
		return fmt.Sprintf("unknown type %s", t) // RFC 9396 §5: unknown type
	}
	if t == TypeIntentMandate {
		return validateWith(d, t, s, nil)
	}
	return validateWith(d, t, s, common)
}

// validateWith checks d against schema s of type t, members of extra
// allowed besides s's own.
func validateWith(d map[string]any, t string, s schema, extra map[string]check) string {
	for _, name := range s.required {
		if _, ok := d[name]; !ok {
			return fmt.Sprintf("%s requires %s", t, name)
		}
	}
	names := make([]string, 0, len(d))
	for name := range d {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if name == "type" {
			continue
		}
		c, ok := s.members[name]
		if !ok {
			c, ok = extra[name]
		}
		if !ok {
			return fmt.Sprintf("unknown member %s in %s", name, t)
		}
		if msg := c(d[name]); msg != "" {
			return name + " " + msg
		}
	}
	return ""
}

func nonEmptyString(v any) string {
	if s, ok := v.(string); !ok || s == "" {
		return "must be a non-empty string"
	}
	return ""
}

func stringList(v any) string {
	l, ok := v.([]any)
	if !ok || len(l) == 0 {
		return "must be a non-empty array of strings"
	}
	for _, e := range l {
		if s, ok := e.(string); !ok || s == "" {
			return "must be a non-empty array of strings"
		}
	}
	return ""
}

// uriList checks locations: RFC 9396 §2.2 says they are URIs of resource
// servers; they become the access token audience, so only absolute http(s)
// URIs with a host and no fragment are accepted.
func uriList(v any) string {
	if msg := stringList(v); msg != "" {
		return msg
	}
	for _, e := range v.([]any) {
		u, err := url.Parse(e.(string))
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Fragment != "" || u.User != nil {
			return fmt.Sprintf("must hold absolute http or https URIs (%s is not one)", e)
		}
	}
	return ""
}

var currencyCode = regexp.MustCompile(`^[A-Z]{3}$`)

func currency(v any) string {
	if s, ok := v.(string); !ok || !currencyCode.MatchString(s) {
		return "must be an ISO 4217 code (three upper-case letters)" // ISO 4217 alphabetic code
	}
	return ""
}

var decimal = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?$`)

func amount(v any) string {
	switch a := v.(type) {
	case json.Number:
	case string:
		if !decimal.MatchString(a) {
			return "must be a number or a decimal string"
		}
	default:
		return "must be a number or a decimal string"
	}
	r, ok := ratOf(v)
	if !ok {
		return "must be a number or a decimal string"
	}
	// A positive amount that rounds to 0 (1e-400) would canonicalise to 0.
	if f, _ := r.Float64(); r.Sign() <= 0 || f <= 0 || math.IsInf(f, 0) {
		return "must be greater than zero and finite"
	}
	return ""
}

var creditorMembers = []string{"name", "iban", "account"}

func creditor(v any) string {
	obj, ok := v.(map[string]any)
	if !ok || len(obj) == 0 {
		return "must be a non-empty object"
	}
	for name, m := range obj {
		if !slices.Contains(creditorMembers, name) {
			return fmt.Sprintf("has unknown member %s", name)
		}
		if s, ok := m.(string); !ok || s == "" {
			return fmt.Sprintf("member %s must be a non-empty string", name)
		}
	}
	return ""
}

// ratOf reads an amount exactly: a JSON number, a decimal string, or a Go
// number for entries built in code.
func ratOf(v any) (*big.Rat, bool) {
	switch a := v.(type) {
	case json.Number:
		// Bound the exponent before big.Rat expands it (1e999999999).
		if f, err := strconv.ParseFloat(string(a), 64); err != nil || math.IsInf(f, 0) {
			return nil, false
		}
		return new(big.Rat).SetString(string(a))
	case string:
		if !decimal.MatchString(a) {
			return nil, false
		}
		return new(big.Rat).SetString(a)
	case float64:
		if math.IsInf(a, 0) || math.IsNaN(a) {
			return nil, false
		}
		return new(big.Rat).SetFloat64(a), true
	case int:
		return new(big.Rat).SetInt64(int64(a)), true
	case int64:
		return new(big.Rat).SetInt64(a), true
	}
	return nil, false
}

// formatRat prints an amount for a description.
func formatRat(r *big.Rat) string {
	if r.IsInt() {
		return r.Num().String()
	}
	f, _ := r.Float64()
	return strconv.FormatFloat(f, 'f', -1, 64)
}
