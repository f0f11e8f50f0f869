package rar

import (
	"strings"
	"testing"
)

const travel = `[{"type":"intent_mandate","intent":"Book my travel for the conference",
 "actions":[{"type":"agent_action","action":"read","resource":"calendar"},
  {"type":"agent_action","action":"search","resource":"flights"},
  {"type":"payment_initiation","currency":"EUR","max_amount":2000},
  {"type":"payment_initiation","currency":"EUR","max_amount":"50","creditor":{"name":"Hotel"},"action":"deposit"},
  {"type":"mcp_tool_call","server":{"name":"cal","url":"https://cal.example"},"tool":"update"}],
 "budget":{"currency":"EUR","amount":2000},"max_uses":20,"valid_until":"2026-12-13T00:00:00Z"}]`

func TestIntentMandateParse(t *testing.T) {
	ds := mustParse(t, travel)
	m, err := ReadMandate(ds[0])
	if err != nil || m.Intent != "Book my travel for the conference" || len(m.Templates) != 5 || m.Currency != "EUR" ||
		FloorCents(m.Budget) != 200000 || m.MaxUses != 20 || m.ValidUntil.Year() != 2026 {
		t.Fatalf("ReadMandate: %v %+v", err, m)
	}
	bad := map[string]string{
		"two entries":          `[` + strings.Trim(travel, "[]") + `,{"type":"agent_action","action":"a","resource":"b"}]`,
		"amount in a template": `[{"type":"intent_mandate","intent":"x","valid_until":"2026-12-13T00:00:00Z","actions":[{"type":"payment_initiation","currency":"EUR","amount":5,"max_amount":5}]}]`,
		"no max_amount":        `[{"type":"intent_mandate","intent":"x","valid_until":"2026-12-13T00:00:00Z","actions":[{"type":"payment_initiation","currency":"EUR"}]}]`,
		"nested mandate":       `[{"type":"intent_mandate","intent":"x","valid_until":"2026-12-13T00:00:00Z","actions":[{"type":"intent_mandate"}]}]`,
		"no actions":           `[{"type":"intent_mandate","intent":"x","valid_until":"2026-12-13T00:00:00Z","actions":[]}]`,
		"long intent":          `[{"type":"intent_mandate","intent":"` + strings.Repeat("é", 201) + `","valid_until":"2026-12-13T00:00:00Z","actions":[{"type":"agent_action","action":"a","resource":"b"}]}]`,
		"hidden intent":        `[{"type":"intent_mandate","intent":"pay \u202e","valid_until":"2026-12-13T00:00:00Z","actions":[{"type":"agent_action","action":"a","resource":"b"}]}]`,
		"bad until":            `[{"type":"intent_mandate","intent":"x","valid_until":"tomorrow","actions":[{"type":"agent_action","action":"a","resource":"b"}]}]`,
		"zero uses":            `[{"type":"intent_mandate","intent":"x","max_uses":0,"valid_until":"2026-12-13T00:00:00Z","actions":[{"type":"agent_action","action":"a","resource":"b"}]}]`,
		"budget member":        `[{"type":"intent_mandate","intent":"x","budget":{"currency":"EUR","amount":1,"x":1},"valid_until":"2026-12-13T00:00:00Z","actions":[{"type":"agent_action","action":"a","resource":"b"}]}]`,
		"locations on it":      `[{"type":"intent_mandate","intent":"x","locations":["https://a.example"],"valid_until":"2026-12-13T00:00:00Z","actions":[{"type":"agent_action","action":"a","resource":"b"}]}]`,
	}
	for name, raw := range bad {
		if _, err := Parse(raw); err == nil || err.Error() == "" || !strings.Contains(err.Error(), "invalid_authorization_details") {
			t.Errorf("%s: Parse = %v; want invalid_authorization_details", name, err)
		}
	}
}

func TestCover(t *testing.T) {
	m, _ := ReadMandate(mustParse(t, travel)[0])
	cases := []struct {
		name, entries string
		want          bool
	}{
		{"read calendar", `[{"type":"agent_action","action":"read","resource":"calendar"}]`, true},
		{"write calendar", `[{"type":"agent_action","action":"write","resource":"calendar"}]`, false},
		{"payment within", `[{"type":"payment_initiation","currency":"EUR","amount":"1999.99"}]`, true},
		{"payment over max", `[{"type":"payment_initiation","currency":"EUR","amount":2000.01}]`, false},
		{"other currency", `[{"type":"payment_initiation","currency":"USD","amount":5}]`, false},
		{"two payments, two templates", `[{"type":"payment_initiation","currency":"EUR","amount":5},{"type":"payment_initiation","currency":"EUR","amount":40,"creditor":{"name":"Hotel"},"action":"deposit"}]`, true},
		{"two payments, one fits only the wide one", `[{"type":"payment_initiation","currency":"EUR","amount":5},{"type":"payment_initiation","currency":"EUR","amount":6}]`, false},
		{"pinned creditor differs", `[{"type":"payment_initiation","currency":"EUR","amount":40,"creditor":{"name":"Other"},"action":"deposit"},{"type":"payment_initiation","currency":"EUR","amount":3000}]`, false},
		{"one template twice", `[{"type":"agent_action","action":"read","resource":"calendar"},{"type":"agent_action","action":"read","resource":"calendar"}]`, false},
		{"mcp any arguments", `[{"type":"mcp_tool_call","server":{"name":"cal","url":"https://cal.example"},"tool":"update","arguments":{"d":1}}]`, true},
		{"mcp other tool", `[{"type":"mcp_tool_call","server":{"name":"cal","url":"https://cal.example"},"tool":"delete","arguments":{}}]`, false},
		{"locations not in template", `[{"type":"agent_action","action":"read","resource":"calendar","locations":["https://x.example"]}]`, false},
		{"none", `[]`, false},
	}
	for _, c := range cases {
		if got := Cover(mustParse(t, c.entries), m.Templates); got != c.want {
			t.Errorf("%s: Cover = %v, want %v", c.name, got, c.want)
		}
	}
	if c, ok := PaymentCents(mustParse(t, `[{"type":"payment_initiation","currency":"EUR","amount":"10.001"},{"type":"agent_action","action":"a","resource":"b"}]`), "EUR"); !ok || c != 1001 {
		t.Errorf("PaymentCents = %d %v, want 1001 (rounded up)", c, ok)
	}
	if _, ok := PaymentCents(mustParse(t, `[{"type":"payment_initiation","currency":"USD","amount":1}]`), "EUR"); ok {
		t.Error("a payment in another currency counted")
	}
}
