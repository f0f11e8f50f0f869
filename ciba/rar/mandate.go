package rar

import (
	"encoding/json"
	"fmt"
	"math/big"
	"reflect"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// TypeIntentMandate is a user's intent, approved once on the phone: the
// templates of what an agent may then do without asking again, within a
// budget, a number of uses and an end. It is the only entry of its request.
const TypeIntentMandate = "intent_mandate"

// Bounds of an intent_mandate entry.
const (
	MaxIntent    = 200 // code points in intent
	MaxTemplates = 16  // templates in actions
	MaxUses      = 1_000_000
)

var intentMandate = schema{
	members: map[string]check{
		"intent":      intentText,
		"actions":     templates,
		"budget":      budget,
		"max_uses":    maxUses,
		"valid_until": rfc3339,
	},
	required: []string{"intent", "actions", "valid_until"},
}

// templateSchemas are the templates a mandate's actions may hold: an entry
// of a registered type whose members narrow what is allowed. A payment
// template has max_amount instead of amount.
var templateSchemas = map[string]schema{
	TypeAgentAction: {
		members:  map[string]check{"action": nonEmptyString, "resource": nonEmptyString},
		required: []string{"action", "resource"},
	},
	TypePaymentInitiation: {
		members: map[string]check{
			"action":     nonEmptyString,
			"currency":   currency,
			"max_amount": amount,
			"creditor":   creditor,
		},
		required: []string{"currency", "max_amount"},
	},
	TypeMCPToolCall: {
		members: map[string]check{
			"server":      mcpServer,
			"tool":        shortName,
			"arguments":   mcpArguments,
			"annotations": mcpAnnotations,
		},
		required: []string{"server", "tool"},
	},
}

func intentText(v any) string {
	s, ok := v.(string)
	if n := utf8.RuneCountInString(s); !ok || n < 1 || n > MaxIntent {
		return fmt.Sprintf("must be a string of 1 to %d characters", MaxIntent)
	}
	return ""
}

func templates(v any) string {
	l, ok := v.([]any)
	if !ok || len(l) == 0 || len(l) > MaxTemplates {
		return fmt.Sprintf("must be an array of 1 to %d templates", MaxTemplates)
	}
	for i, e := range l {
		obj, ok := e.(map[string]any)
		if !ok {
			return fmt.Sprintf("[%d] must be a JSON object", i)
		}
		t, _ := obj["type"].(string)
		s, ok := templateSchemas[t]
		if !ok {
			return fmt.Sprintf("[%d]: type must be one of agent_action, payment_initiation, mcp_tool_call", i)
		}
		if msg := validateWith(obj, t, s, map[string]check{"locations": uriList}); msg != "" {
			return fmt.Sprintf("[%d]: %s", i, msg)
		}
	}
	return ""
}

func budget(v any) string {
	obj, ok := v.(map[string]any)
	if !ok || len(obj) != 2 || obj["currency"] == nil || obj["amount"] == nil {
		return `must be {"currency", "amount"}`
	}
	if msg := currency(obj["currency"]); msg != "" {
		return "currency " + msg
	}
	if msg := amount(obj["amount"]); msg != "" {
		return "amount " + msg
	}
	return ""
}

func maxUses(v any) string {
	n, ok := v.(json.Number)
	if !ok {
		if f, isF := v.(float64); isF && f == float64(int64(f)) {
			n, ok = json.Number(strconv.FormatInt(int64(f), 10)), true
		}
	}
	if i, err := strconv.ParseInt(string(n), 10, 64); !ok || err != nil || i < 1 || i > MaxUses {
		return fmt.Sprintf("must be an integer from 1 to %d", MaxUses)
	}
	return ""
}

func rfc3339(v any) string {
	s, ok := v.(string)
	if _, err := time.Parse(time.RFC3339, s); !ok || err != nil {
		return "must be an RFC 3339 date and time"
	}
	return ""
}

// IntentMandate is an intent_mandate entry, read.
type IntentMandate struct {
	Intent     string
	Templates  []Detail
	Currency   string // the budget's, "" without a budget
	Budget     *big.Rat
	MaxUses    int64 // 0: unlimited
	ValidUntil time.Time
}

// ReadMandate reads an entry that Parse accepted as an intent_mandate.
func ReadMandate(d Detail) (*IntentMandate, error) {
	if typeOf(d) != TypeIntentMandate {
		return nil, refuse("not an intent_mandate")
	}
	m := &IntentMandate{}
	m.Intent, _ = d["intent"].(string)
	for _, t := range d["actions"].([]any) {
		m.Templates = append(m.Templates, Detail(t.(map[string]any)))
	}
	if b, ok := d["budget"].(map[string]any); ok {
		m.Currency, _ = b["currency"].(string)
		m.Budget, _ = ratOf(b["amount"])
	}
	if n, ok := d["max_uses"]; ok {
		m.MaxUses, _ = strconv.ParseInt(fmt.Sprint(n), 10, 64)
	}
	var err error
	if m.ValidUntil, err = time.Parse(time.RFC3339, d["valid_until"].(string)); err != nil {
		return nil, refuse("valid_until must be an RFC 3339 date and time")
	}
	return m, nil
}

// IsMandate reports whether ds is a mandate request.
func IsMandate(ds []Detail) bool {
	return slices.ContainsFunc(ds, func(d Detail) bool { return typeOf(d) == TypeIntentMandate })
}

// Cover assigns each entry a distinct template that covers it (one
// template never covers two entries of one request) and reports whether
// every entry has one. No entries are never covered: a mandate approves
// actions, and a request without any names none.
func Cover(entries, templates []Detail) bool {
	if len(entries) == 0 || len(entries) > len(templates) {
		return false
	}
	fits := make([][]bool, len(entries))
	for i, e := range entries {
		fits[i] = make([]bool, len(templates))
		for j, t := range templates {
			fits[i][j] = templateCovers(e, t)
		}
	}
	return unmatched(fits, len(templates)) < 0
}

// unmatched finds a distinct column for every row of fits (Kuhn's
// augmenting paths) and returns the first row that gets none, or -1: one
// approved entry or template never covers two requested entries.
func unmatched(fits [][]bool, cols int) int {
	owner := make([]int, cols)
	for j := range owner {
		owner[j] = -1
	}
	var assign func(i int, seen []bool) bool
	assign = func(i int, seen []bool) bool {
		for j, ok := range fits[i] {
			if !ok || seen[j] {
				continue
			}
			seen[j] = true
			if owner[j] < 0 || assign(owner[j], seen) {
				owner[j] = i
				return true
			}
		}
		return false
	}
	for i := range fits {
		if !assign(i, make([]bool, cols)) {
			return i
		}
	}
	return -1
}

// templateCovers says whether template t allows entry e: the same type,
// the members the template pins equal, a payment's amount at most
// max_amount in the same currency, and locations within the template's
// (none where it names none). An entry member the template has no rule
// for (common members but locations) is not covered.
func templateCovers(e, t Detail) bool {
	if typeOf(e) != typeOf(t) || typeOf(e) == TypeIntentMandate {
		return false
	}
	if subset("locations", e, t, false) != "" {
		return false
	}
	for _, name := range []string{"actions", "datatypes", "identifier", "privileges"} {
		if _, ok := e[name]; ok {
			return false
		}
	}
	same := func(name string) bool { return reflect.DeepEqual(e[name], t[name]) }
	pinned := func(name string) bool { _, ok := t[name]; return !ok || same(name) }
	switch typeOf(e) {
	case TypeAgentAction:
		return same("action") && same("resource")
	case TypePaymentInitiation:
		a, ok1 := ratOf(e["amount"])
		m, ok2 := ratOf(t["max_amount"])
		return ok1 && ok2 && a.Cmp(m) <= 0 && same("currency") && pinned("creditor") && pinned("action")
	case TypeMCPToolCall:
		return same("server") && same("tool") && pinned("arguments")
	}
	return false
}

// PaymentCents is the sum of the entries' payment amounts in cents,
// each rounded up (a mandate is never charged less than was paid), and
// whether every payment is in currency (any, when currency is "").
func PaymentCents(ds []Detail, currency string) (int64, bool) {
	sum := new(big.Rat)
	for _, d := range ds {
		if typeOf(d) != TypePaymentInitiation {
			continue
		}
		if c, _ := d["currency"].(string); currency != "" && c != currency {
			return 0, false
		}
		if r, ok := ratOf(d["amount"]); ok {
			sum.Add(sum, r)
		}
	}
	return CeilCents(sum), true
}

// CeilCents is r in cents, rounded up; FloorCents rounds down.
func CeilCents(r *big.Rat) int64 {
	c := new(big.Rat).Mul(r, big.NewRat(100, 1))
	q := new(big.Int).Quo(c.Num(), c.Denom())
	if new(big.Rat).SetInt(q).Cmp(c) < 0 {
		q.Add(q, big.NewInt(1))
	}
	if !q.IsInt64() {
		return 1<<62 - 1
	}
	return q.Int64()
}

// FloorCents is r in cents, rounded down (a budget never allows more
// than was signed).
func FloorCents(r *big.Rat) int64 {
	c := new(big.Rat).Mul(r, big.NewRat(100, 1))
	q := new(big.Int).Quo(c.Num(), c.Denom())
	if !q.IsInt64() {
		return 1<<62 - 1
	}
	return q.Int64()
}
