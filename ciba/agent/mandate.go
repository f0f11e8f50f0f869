package agent

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// Mandate is an intent mandate to ask for: the user approves the intent
// once on the phone, and later requests inside its actions, budget, uses
// and end date need no new approval (docs/mandates.md).
type Mandate struct {
	// Intent is the sentence the user reads, e.g. "Book my travel for the
	// conference" (1–200 characters).
	Intent string
	// Actions are the templates of what is allowed: authorization_details
	// entries whose members narrow it (a payment template has currency
	// and max_amount instead of amount).
	Actions []map[string]any
	// Budget caps the sum of the payments under the mandate (optional).
	Budget *Budget
	// MaxUses caps the number of requests under it (0: no cap).
	MaxUses int
	// ValidUntil is when the mandate ends.
	ValidUntil time.Time
}

// Budget is a mandate's budget: an amount in an ISO 4217 currency.
type Budget struct {
	Currency string  `json:"currency"`
	Amount   float64 `json:"amount"`
}

// entry is the mandate as the intent_mandate authorization_details entry.
func (m Mandate) entry() map[string]any {
	e := map[string]any{"type": "intent_mandate", "intent": m.Intent, "actions": m.Actions,
		"valid_until": m.ValidUntil.UTC().Format(time.RFC3339)}
	if m.Budget != nil {
		e["budget"] = m.Budget
	}
	if m.MaxUses > 0 {
		e["max_uses"] = m.MaxUses
	}
	return e
}

// AskMandate asks the user named by r.LoginHint to approve m, then waits
// like Authorize. It returns the token and the new mandate's id; pass the
// id as Request.MandateID to act within the mandate. r's
// AuthorizationDetails and MandateID must be empty: the mandate is the
// request's only entry.
func (c *Client) AskMandate(ctx context.Context, r Request, m Mandate) (*Token, string, error) {
	if r.AuthorizationDetails != nil || r.MandateID != "" {
		return nil, "", errors.New("agent: a mandate request carries only the mandate")
	}
	r.AuthorizationDetails = []any{m.entry()}
	tok, err := c.Authorize(ctx, r)
	if err != nil {
		return nil, "", err
	}
	var ds []struct {
		Type      string `json:"type"`
		MandateID string `json:"mandate_id"`
	}
	if err := json.Unmarshal(tok.AuthorizationDetails, &ds); err != nil || len(ds) != 1 ||
		ds[0].Type != "intent_mandate" || ds[0].MandateID == "" {
		return tok, "", errors.New("agent: the token names no mandate_id")
	}
	return tok, ds[0].MandateID, nil
}
