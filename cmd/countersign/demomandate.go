package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// mandate shows the mandate path: the agent asks the phone once for an
// intent with a budget, then acts within it without asking again.
func (a *demoAgentClient) mandate(ctx context.Context, now time.Time, step int) error {
	fmt.Fprintf(a.out, "\n%d. An intent mandate: approve once on the phone, up to 2000 EUR for three days (waits for the phone)\n", step)
	ask := demoRequest{bindingMessage: "Trip to the conference", details: `[{"type":"intent_mandate","intent":"Book my travel for the conference",` +
		`"actions":[{"type":"agent_action","action":"read","resource":"calendar"},` +
		`{"type":"payment_initiation","currency":"EUR","max_amount":2000}],"budget":{"currency":"EUR","amount":2000},` +
		`"valid_until":"` + now.Add(72*time.Hour).UTC().Format(time.RFC3339) + `"}]`}
	tok, err := a.run(ctx, ask)
	if err != nil || tok == nil {
		return err
	}
	var ds []struct {
		MandateID string `json:"mandate_id"`
	}
	if b, err := json.Marshal(tok["authorization_details"]); err == nil {
		_ = json.Unmarshal(b, &ds)
	}
	if len(ds) != 1 || ds[0].MandateID == "" {
		fmt.Fprintln(a.out, "   ✗ the token names no mandate")
		return nil
	}
	mid := ds[0].MandateID
	fmt.Fprintf(a.out, "   mandate %s: the agent sends mandate_id=%s with its next requests\n", mid, mid)
	fmt.Fprintf(a.out, "\n%d. A train ticket inside the mandate (approved by the mandate at once, no phone)\n", step+1)
	if _, err := a.run(ctx, demoRequest{bindingMessage: "Train 412.50", details: `[{"type":"payment_initiation","currency":"EUR",` +
		`"amount":"412.50","creditor":{"name":"Rail Europe"}}]`}, "mandate_id", mid); err != nil {
		return err
	}
	fmt.Fprintf(a.out, "\n%d. A 1200 EUR hotel inside the mandate but over the user's limit (a rule still sends it to the phone)\n", step+2)
	_, err = a.run(ctx, demoRequest{bindingMessage: "Hotel 1200", details: `[{"type":"payment_initiation","currency":"EUR",` +
		`"amount":1200,"creditor":{"name":"Grand Hotel"}}]`}, "mandate_id", mid)
	return err
}
