package rar

import (
	"fmt"
	"reflect"
	"slices"
)

// Narrower checks RFC 8693 attenuation: the narrow entries (requested in a
// token exchange) may not grant more than the wide ones (in the subject
// token). Each narrow entry needs its own wide entry of the same type with
// the same action, resource, currency, creditor and every other member,
// an amount no larger, locations a subset (absent only where absent) and
// actions, datatypes and privileges a subset (any, where absent). One wide
// entry covers one narrow entry, so an approved amount cannot be spent
// twice. No narrow entries are always narrower. A refusal is *oauth.Error
// invalid_authorization_details saying what widened.
func Narrower(narrow, wide []Detail) error {
	if len(narrow) == 0 {
		return nil
	}
	fits := make([][]bool, len(narrow))
	for i, n := range narrow {
		fits[i] = make([]bool, len(wide))
		reason := ""
		for j, w := range wide {
			msg := covers(n, w)
			fits[i][j] = msg == ""
			if msg != "" && reason == "" && typeOf(n) == typeOf(w) {
				reason = msg
			}
		}
		if !slices.Contains(fits[i], true) {
			if reason == "" {
				reason = fmt.Sprintf("type %s was not approved", typeOf(n))
			}
			return refuse("authorization_details[%d]: %s", i, reason) // RFC 8693 §2.2.2
		}
	}
	// A distinct wide entry for every narrow one.
	if i := unmatched(fits, len(wide)); i >= 0 {
		return refuse("authorization_details[%d]: the approved entry that covers it is already used by another entry", i)
	}
	return nil
}

// covers says why w does not cover n, "" when it does.
func covers(n, w Detail) string {
	if typeOf(n) != typeOf(w) {
		return "type differs"
	}
	if n["amount"] != nil || w["amount"] != nil {
		na, nok := ratOf(n["amount"])
		wa, wok := ratOf(w["amount"])
		switch {
		case !nok && wok:
			return "amount is missing"
		case nok && wok && na.Cmp(wa) > 0:
			return fmt.Sprintf("amount %s is above the approved %s", formatRat(na), formatRat(wa))
		case nok != wok || !nok:
			return "amount differs from the approved one"
		}
	}
	// Absent locations mean the default audience: absent only where absent.
	if msg := subset("locations", n, w, false); msg != "" {
		return msg
	}
	for _, name := range []string{"actions", "datatypes", "privileges"} {
		if msg := subset(name, n, w, true); msg != "" {
			return msg
		}
	}
	// An identifier narrows to one resource: it may be added, not changed.
	if wi, ok := w["identifier"]; ok && !reflect.DeepEqual(n["identifier"], wi) {
		return fmt.Sprintf("identifier %s differs from the approved %s", show(n["identifier"]), show(wi))
	}
	for _, name := range memberNames(n, w) {
		switch name {
		case "type", "amount", "locations", "actions", "datatypes", "privileges", "identifier":
			continue
		}
		nv, wv := n[name], w[name]
		if !reflect.DeepEqual(nv, wv) {
			return fmt.Sprintf("%s %s differs from the approved %s", name, show(nv), show(wv))
		}
	}
	return ""
}

// subset says why n's list is not within w's. An absent wide list is
// unrestricted when absentIsAny, otherwise it admits only an absent list.
func subset(name string, n, w Detail, absentIsAny bool) string {
	_, hasN := n[name]
	_, hasW := w[name]
	switch {
	case !hasW && absentIsAny, !hasW && !hasN:
		return ""
	case !hasW:
		return fmt.Sprintf("%s were not approved", name)
	case !hasN:
		return fmt.Sprintf("%s are required: the approval named %v", name, stringsOf(w[name]))
	}
	allowed := stringsOf(w[name])
	for _, s := range stringsOf(n[name]) {
		if !slices.Contains(allowed, s) {
			return fmt.Sprintf("%s %s is not among the approved %v", name, s, allowed)
		}
	}
	return ""
}

func memberNames(a, b Detail) []string {
	names := make([]string, 0, len(a)+len(b))
	for k := range a {
		names = append(names, k)
	}
	for k := range b {
		names = append(names, k)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

func show(v any) string {
	if v == nil {
		return "(none)"
	}
	return fmt.Sprint(v)
}

func typeOf(d Detail) string {
	t, _ := d["type"].(string)
	return t
}
