package rar

import (
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/countersign/countersign/ciba/oauth"
)

// wantRefusal fails unless err is a 400 invalid_authorization_details whose
// description contains want.
func wantRefusal(t *testing.T, err error, want string) {
	t.Helper()
	var oe *oauth.Error
	if !errors.As(err, &oe) {
		t.Fatalf("error = %v, want *oauth.Error", err)
	}
	if oe.Code != oauth.InvalidAuthorizationDetails || oe.Status != http.StatusBadRequest {
		t.Fatalf("error = %s (%d), want invalid_authorization_details (400)", oe.Code, oe.Status)
	}
	if !strings.Contains(oe.Description, want) {
		t.Fatalf("description = %q, want it to contain %q", oe.Description, want)
	}
}

func TestParseRefusals(t *testing.T) {
	pay := func(members string) string {
		return `[{"type":"payment_initiation","amount":10,"currency":"EUR"` + members + `}]`
	}
	agent := func(members string) string {
		return `[{"type":"agent_action","action":"read","resource":"mail"` + members + `}]`
	}
	many := "[" + strings.Repeat(`{"type":"agent_action","action":"a","resource":"r"},`, MaxEntries) + `{"type":"agent_action","action":"a","resource":"r"}]`
	huge := `[{"type":"agent_action","action":"a","resource":"` + strings.Repeat("x", MaxBytes) + `"}]`
	tests := []struct {
		name, raw, want string
	}{
		{"not JSON", `[{`, "not valid JSON"},
		{"whitespace", `  `, "not valid JSON"},
		{"object not array", `{"type":"agent_action","action":"a","resource":"r"}`, "must be a JSON array"},
		{"string not array", `"payment"`, "must be a JSON array"},
		{"trailing data", `[] []`, "not valid JSON"},
		{"entry not object", `[1]`, "authorization_details[0] must be a JSON object"},
		{"second entry not object", `[{"type":"agent_action","action":"a","resource":"r"},[]]`, "authorization_details[1] must be a JSON object"},
		{"too many entries", many, "more than 16 entries"},
		{"too long", huge, "longer than 8192 bytes"},
		{"duplicate member", `[{"type":"agent_action","action":"a","action":"b","resource":"r"}]`, "not valid JSON"},
		{"invalid UTF-8", "[{\"type\":\"agent_action\",\"action\":\"\xff\",\"resource\":\"r\"}]", "not valid JSON"},
		{"missing type", `[{"action":"a"}]`, "type is required"},
		{"type not string", `[{"type":1}]`, "type is required"},
		{"empty type", `[{"type":""}]`, "type is required"},
		{"unknown type", `[{"type":"account_information"}]`, "unknown type account_information"},
		{"unknown member payment", pay(`,"fee":1`), "unknown member fee in payment_initiation"},
		{"unknown member agent", agent(`,"amount":1`), "unknown member amount in agent_action"},
		{"payment without amount", `[{"type":"payment_initiation","currency":"EUR"}]`, "payment_initiation requires amount"},
		{"payment without currency", `[{"type":"payment_initiation","amount":1}]`, "payment_initiation requires currency"},
		{"amount zero", `[{"type":"payment_initiation","amount":0,"currency":"EUR"}]`, "amount must be greater than zero"},
		{"amount zero string", `[{"type":"payment_initiation","amount":"0.00","currency":"EUR"}]`, "amount must be greater than zero"},
		{"amount negative", `[{"type":"payment_initiation","amount":-5,"currency":"EUR"}]`, "amount must be greater than zero"},
		{"amount negative string", `[{"type":"payment_initiation","amount":"-5","currency":"EUR"}]`, "amount must be a number or a decimal string"},
		{"amount comma string", `[{"type":"payment_initiation","amount":"10,50","currency":"EUR"}]`, "amount must be a number or a decimal string"},
		{"amount exponent string", `[{"type":"payment_initiation","amount":"1e2","currency":"EUR"}]`, "amount must be a number or a decimal string"},
		{"amount bool", `[{"type":"payment_initiation","amount":true,"currency":"EUR"}]`, "amount must be a number or a decimal string"},
		{"amount overflow", `[{"type":"payment_initiation","amount":1e400,"currency":"EUR"}]`, "not valid JSON"},
		{"amount underflow", `[{"type":"payment_initiation","amount":1e-400,"currency":"EUR"}]`, "amount must be"},
		{"currency lower", `[{"type":"payment_initiation","amount":1,"currency":"eur"}]`, "currency must be an ISO 4217 code"},
		{"currency long", `[{"type":"payment_initiation","amount":1,"currency":"EURO"}]`, "currency must be an ISO 4217 code"},
		{"currency number", `[{"type":"payment_initiation","amount":1,"currency":978}]`, "currency must be an ISO 4217 code"},
		{"action not string", pay(`,"action":1`), "action must be a non-empty string"},
		{"remittance not string", pay(`,"remittance_information":["a"]`), "remittance_information must be a non-empty string"},
		{"creditor not object", pay(`,"creditor":"Bob"`), "creditor must be a non-empty object"},
		{"creditor empty", pay(`,"creditor":{}`), "creditor must be a non-empty object"},
		{"creditor unknown member", pay(`,"creditor":{"name":"Bob","bic":"X"}`), "creditor has unknown member bic"},
		{"creditor member not string", pay(`,"creditor":{"iban":7}`), "creditor member iban must be a non-empty string"},
		{"agent without action", `[{"type":"agent_action","resource":"r"}]`, "agent_action requires action"},
		{"agent without resource", `[{"type":"agent_action","action":"a"}]`, "agent_action requires resource"},
		{"agent empty resource", `[{"type":"agent_action","action":"a","resource":""}]`, "resource must be a non-empty string"},
		{"locations not array", agent(`,"locations":"https://rs.example"`), "locations must be a non-empty array"},
		{"locations empty", agent(`,"locations":[]`), "locations must be a non-empty array"},
		{"locations relative", agent(`,"locations":["/api"]`), "locations must hold absolute http or https URIs (/api"},
		{"locations ftp", agent(`,"locations":["ftp://rs.example"]`), "locations must hold absolute"},
		{"locations fragment", agent(`,"locations":["https://rs.example/#x"]`), "locations must hold absolute"},
		{"locations userinfo", agent(`,"locations":["https://u:p@rs.example/"]`), "locations must hold absolute"},
		{"actions with number", agent(`,"actions":["read",1]`), "actions must be a non-empty array of strings"},
		{"datatypes object", agent(`,"datatypes":{}`), "datatypes must be a non-empty array of strings"},
		{"identifier number", agent(`,"identifier":5`), "identifier must be a non-empty string"},
		{"privileges empty", agent(`,"privileges":[]`), "privileges must be a non-empty array of strings"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ds, err := Parse(tc.raw)
			if ds != nil {
				t.Fatalf("Parse returned entries %v with a refusal", ds)
			}
			wantRefusal(t, err, tc.want)
		})
	}
}

func TestParseKeepsEntriesAsSent(t *testing.T) {
	raw := `[{"type":"payment_initiation","action":"transfer","amount":10.50,"currency":"EUR",
		"creditor":{"name":"Bob","iban":"DE02100100109307118603"},"remittance_information":"inv 7",
		"locations":["https://bank.example/payments"],"identifier":"acct-1"},
		{"type":"agent_action","action":"send","resource":"mail","actions":["send"],"datatypes":["email"],"privileges":["user"]}]`
	ds, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	want := []Detail{
		{"type": "payment_initiation", "action": "transfer", "amount": json.Number("10.50"), "currency": "EUR",
			"creditor": map[string]any{"name": "Bob", "iban": "DE02100100109307118603"}, "remittance_information": "inv 7",
			"locations": []any{"https://bank.example/payments"}, "identifier": "acct-1"},
		{"type": "agent_action", "action": "send", "resource": "mail", "actions": []any{"send"},
			"datatypes": []any{"email"}, "privileges": []any{"user"}},
	}
	if !reflect.DeepEqual(ds, want) {
		t.Fatalf("Parse = %#v\nwant %#v", ds, want)
	}
}

func TestParseAccepts(t *testing.T) {
	for _, raw := range []string{
		`[]`,
		`[{"type":"payment_initiation","amount":"25000","currency":"EUR"}]`,
		`[{"type":"payment_initiation","amount":"0.01","currency":"JPY"}]`,
		`[{"type":"payment_initiation","amount":1e3,"currency":"USD"}]`,
		`[{"type":"agent_action","action":"a","resource":"r","locations":["http://127.0.0.1:9000/x"]}]`,
	} {
		if _, err := Parse(raw); err != nil {
			t.Errorf("Parse(%s) = %v, want no error", raw, err)
		}
	}
	if ds, err := Parse(""); ds != nil || err != nil {
		t.Errorf(`Parse("") = %v, %v; want nil, nil (RFC 6749 §3.1)`, ds, err)
	}
}

func TestTypes(t *testing.T) {
	if got := Types(); !reflect.DeepEqual(got, []string{"payment_initiation", "agent_action", "mcp_tool_call", "intent_mandate"}) {
		t.Fatalf("Types() = %v", got)
	}
}

func mustParse(t testing.TB, raw string) []Detail {
	t.Helper()
	ds, err := Parse(raw)
	if err != nil {
		t.Fatalf("Parse(%s): %v", raw, err)
	}
	return ds
}
