package rules

import (
	"errors"
	"unicode/utf8"
)

// maxNestingDepth bounds how deep maps and lists may nest inside
// user.attributes or an action.details entry.
const maxNestingDepth = 8

// CheckBounds reports the first way in which the input exceeds the declared
// bounds (MaxStringLen, MaxScopes, ...), or nil. Callers may use it to
// refuse oversized requests at the boundary. Evaluate accepts any input:
// within the bounds the load-time cost estimate already caps every
// expression, so it runs without a cost tracker; beyond them every
// expression runs under RuntimeCostLimit.
func (in *Input) CheckBounds() error {
	if msg := in.boundsViolation(); msg != "" {
		return errors.New("rules: input out of bounds: " + msg)
	}
	return nil
}

func (in *Input) boundsViolation() string {
	a, u, ac, r := &in.Agent, &in.User, &in.Action, &in.Request
	for _, s := range [...]string{a.ClientID, a.Name, a.Owner, a.TrustTier, a.Model, a.Version,
		u.ID, u.Email, u.Timezone, ac.Currency, ac.BindingMessage, r.Kind, r.IP, r.UserAgent} {
		if !shortString(s) {
			return "a string is longer than MaxStringLen"
		}
	}
	switch {
	case !stringList(a.Chain, MaxChain):
		return "agent.chain is longer than MaxChain or has a string longer than MaxStringLen"
	case !stringList(ac.Scopes, MaxScopes):
		return "action.scopes is longer than MaxScopes or has a string longer than MaxStringLen"
	case !stringList(ac.Types, MaxDetails), !stringList(ac.Actions, MaxDetails):
		return "action.types or action.actions is longer than MaxDetails"
	case !stringList(ac.ACRValues, MaxACRValues):
		return "action.acr_values is longer than MaxACRValues"
	case len(u.Attributes) > MaxAttributes:
		return "user.attributes has more than MaxAttributes keys"
	case len(ac.Details) > MaxDetails:
		return "action.details has more than MaxDetails entries"
	case len(in.Mandate.Templates) > MaxDetails || !shortString(in.Mandate.Intent) || !shortString(in.Mandate.ID) || !shortString(in.Mandate.Currency):
		return "mandate.templates has more than MaxDetails entries or a mandate string is longer than MaxStringLen"
	case len(r.AuthZEN) > 4:
		return "request.authzen has more than its four objects"
	}
	for _, v := range r.AuthZEN {
		if !nestedWithin(v, 1) {
			return "a value in request.authzen exceeds MaxNested, MaxStringLen or the nesting depth"
		}
	}
	for k, v := range u.Attributes {
		if !shortString(k) || !nestedWithin(v, 1) {
			return "a value in user.attributes exceeds MaxNested, MaxStringLen or the nesting depth"
		}
	}
	for _, d := range append(ac.Details[:len(ac.Details):len(ac.Details)], in.Mandate.Templates...) {
		if len(d) > MaxDetailEntries {
			return "an action.details entry has more than MaxDetailEntries keys"
		}
		for k, v := range d {
			if !shortString(k) || !nestedWithin(v, 1) {
				return "a value in action.details exceeds MaxNested, MaxStringLen or the nesting depth"
			}
		}
	}
	return ""
}

func shortString(s string) bool {
	return len(s) <= MaxStringLen || utf8.RuneCountInString(s) <= MaxStringLen
}

func stringList(l []string, max int) bool {
	if len(l) > max {
		return false
	}
	for _, s := range l {
		if !shortString(s) {
			return false
		}
	}
	return true
}

// nestedWithin reports whether a free-form value (JSON or YAML decoded)
// stays within MaxNested entries per list or map, MaxStringLen per string
// and maxNestingDepth levels. Values of unexpected Go types are out of
// bounds, so they take the cost-tracked path.
func nestedWithin(v any, depth int) bool {
	if depth > maxNestingDepth {
		return false
	}
	switch x := v.(type) {
	case nil, bool, int, int32, int64, uint, uint32, uint64, float32, float64:
		return true
	case string:
		return shortString(x)
	case []any:
		if len(x) > MaxNested {
			return false
		}
		for _, e := range x {
			if !nestedWithin(e, depth+1) {
				return false
			}
		}
		return true
	case []string:
		return stringList(x, MaxNested)
	case map[string]any:
		if len(x) > MaxNested {
			return false
		}
		for k, e := range x {
			if !shortString(k) || !nestedWithin(e, depth+1) {
				return false
			}
		}
		return true
	}
	return false
}
