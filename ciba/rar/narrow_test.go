package rar

import "testing"

func TestNarrower(t *testing.T) {
	const pay = `{"type":"payment_initiation","action":"transfer","amount":100,"currency":"EUR","creditor":{"name":"Bob"},"locations":["https://bank.example","https://bank2.example"],"actions":["initiate","status"]}`
	const agent = `{"type":"agent_action","action":"read","resource":"mail","locations":["https://mail.example"]}`
	wide := "[" + pay + "," + agent + "]"
	tests := []struct {
		name, narrow, wide, want string // want "" = allowed
	}{
		{"empty narrow", `[]`, wide, ""},
		{"empty narrow, empty wide", `[]`, `[]`, ""},
		{"equal", wide, wide, ""},
		{"equal reordered", "[" + agent + "," + pay + "]", wide, ""},
		{"subset of entries", "[" + agent + "]", wide, ""},
		{"lower amount, fewer locations and actions", `[{"type":"payment_initiation","action":"transfer","amount":"99.99","currency":"EUR","creditor":{"name":"Bob"},"locations":["https://bank.example"],"actions":["status"]}]`, wide, ""},
		{"same amount spelled differently", `[{"type":"payment_initiation","action":"transfer","amount":"100.00","currency":"EUR","creditor":{"name":"Bob"},"locations":["https://bank.example"],"actions":["status"]}]`, wide, ""},
		{"adds actions where none approved", `[{"type":"agent_action","action":"read","resource":"mail","locations":["https://mail.example"],"actions":["list"]}]`, wide, ""},
		{"adds identifier", `[{"type":"agent_action","action":"read","resource":"mail","locations":["https://mail.example"],"identifier":"inbox"}]`, wide, ""},
		{"amount up", `[{"type":"payment_initiation","action":"transfer","amount":100.01,"currency":"EUR","creditor":{"name":"Bob"},"locations":["https://bank.example"],"actions":["status"]}]`, wide, "authorization_details[0]: amount 100.01 is above the approved 100"},
		{"other payment action", `[{"type":"payment_initiation","action":"refund","amount":1,"currency":"EUR","creditor":{"name":"Bob"},"locations":["https://bank.example"],"actions":["status"]}]`, wide, "action refund differs from the approved transfer"},
		{"payment action dropped", `[{"type":"payment_initiation","amount":1,"currency":"EUR","creditor":{"name":"Bob"},"locations":["https://bank.example"],"actions":["status"]}]`, wide, "action (none) differs from the approved transfer"},
		{"other agent action", `[{"type":"agent_action","action":"delete","resource":"mail","locations":["https://mail.example"]}]`, wide, "authorization_details[0]: action delete differs from the approved read"},
		{"other resource", `[{"type":"agent_action","action":"read","resource":"calendar","locations":["https://mail.example"]}]`, wide, "resource calendar differs from the approved mail"},
		{"other currency", `[{"type":"payment_initiation","action":"transfer","amount":1,"currency":"USD","creditor":{"name":"Bob"},"locations":["https://bank.example"],"actions":["status"]}]`, wide, "currency USD differs from the approved EUR"},
		{"other creditor", `[{"type":"payment_initiation","action":"transfer","amount":1,"currency":"EUR","creditor":{"name":"Eve"},"locations":["https://bank.example"],"actions":["status"]}]`, wide, "creditor map[name:Eve] differs"},
		{"added remittance", `[{"type":"payment_initiation","action":"transfer","amount":1,"currency":"EUR","creditor":{"name":"Bob"},"remittance_information":"x","locations":["https://bank.example"],"actions":["status"]}]`, wide, "remittance_information x differs from the approved (none)"},
		{"other location", `[{"type":"agent_action","action":"read","resource":"mail","locations":["https://evil.example"]}]`, wide, "locations https://evil.example is not among the approved [https://mail.example]"},
		{"locations dropped", `[{"type":"agent_action","action":"read","resource":"mail"}]`, wide, "locations are required"},
		{"locations added", `[{"type":"agent_action","action":"read","resource":"mail","locations":["https://mail.example"]}]`, `[{"type":"agent_action","action":"read","resource":"mail"}]`, "locations were not approved"},
		{"other action in actions", `[{"type":"payment_initiation","action":"transfer","amount":1,"currency":"EUR","creditor":{"name":"Bob"},"locations":["https://bank.example"],"actions":["cancel"]}]`, wide, "actions cancel is not among the approved [initiate status]"},
		{"actions dropped", `[{"type":"payment_initiation","action":"transfer","amount":1,"currency":"EUR","creditor":{"name":"Bob"},"locations":["https://bank.example"]}]`, wide, "actions are required"},
		{"other identifier", `[{"type":"agent_action","action":"read","resource":"mail","identifier":"b"}]`, `[{"type":"agent_action","action":"read","resource":"mail","identifier":"a"}]`, "identifier b differs from the approved a"},
		{"type not approved", `[{"type":"payment_initiation","amount":1,"currency":"EUR"}]`, "[" + agent + "]", "authorization_details[0]: type payment_initiation was not approved"},
		{"nothing approved", "[" + agent + "]", `[]`, "type agent_action was not approved"},
		{"approval spent twice", `[{"type":"payment_initiation","action":"transfer","amount":60,"currency":"EUR","creditor":{"name":"Bob"},"locations":["https://bank.example"],"actions":["status"]},{"type":"payment_initiation","action":"transfer","amount":60,"currency":"EUR","creditor":{"name":"Bob"},"locations":["https://bank.example"],"actions":["status"]}]`, wide, "authorization_details[1]: the approved entry that covers it is already used"},
		{"second entry widens", "[" + agent + `,{"type":"agent_action","action":"write","resource":"mail","locations":["https://mail.example"]}]`, wide, "authorization_details[1]: action write differs"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Narrower(mustParse(t, tc.narrow), mustParse(t, tc.wide))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Narrower = %v, want allowed", err)
				}
				return
			}
			wantRefusal(t, err, tc.want)
		})
	}
}

// TestNarrowerMatching needs an augmenting path: a greedy first fit would
// give the small request the large approval and strand the large request.
func TestNarrowerMatching(t *testing.T) {
	wide := mustParse(t, `[{"type":"payment_initiation","amount":100,"currency":"EUR"},{"type":"payment_initiation","amount":10,"currency":"EUR"}]`)
	narrow := mustParse(t, `[{"type":"payment_initiation","amount":5,"currency":"EUR"},{"type":"payment_initiation","amount":90,"currency":"EUR"}]`)
	if err := Narrower(narrow, wide); err != nil {
		t.Fatalf("Narrower = %v, want allowed", err)
	}
}
