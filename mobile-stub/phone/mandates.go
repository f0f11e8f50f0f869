package phone

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Mandate is an intent mandate as the device API shows it
// (GET /device/mandates): what the user approved once, and what agents
// have done under it since.
type Mandate struct {
	ID         string            `json:"mandate_id"`
	ClientID   string            `json:"client_id"`
	ClientName string            `json:"client_name,omitempty"`
	UserID     string            `json:"user_id"`
	Intent     string            `json:"intent"`
	Actions    []json.RawMessage `json:"actions"`
	Budget     *MandateBudget    `json:"budget,omitempty"`
	MaxUses    int               `json:"max_uses,omitempty"`
	ValidUntil time.Time         `json:"valid_until"`
	CreatedAt  time.Time         `json:"created_at"`
	Spent      string            `json:"spent"`
	Uses       int               `json:"uses"`
	// Status is active, expired, revoked or exhausted.
	Status    string         `json:"status"`
	RevokedAt *time.Time     `json:"revoked_at,omitempty"`
	DeviceID  string         `json:"device_id"`
	RequestID string         `json:"request_id"`
	Taken     []MandateTaken `json:"taken"`
}

// MandateBudget is a mandate's budget; Amount is exact as sent.
type MandateBudget struct {
	Currency string      `json:"currency"`
	Amount   json.Number `json:"amount"`
}

// MandateTaken is one request approved under a mandate.
type MandateTaken struct {
	RequestID            string          `json:"request_id"`
	At                   time.Time       `json:"at"`
	AuthorizationDetails json.RawMessage `json:"authorization_details"`
	Amount               string          `json:"amount,omitempty"`
}

// Mandates lists the user's mandates, newest first (GET /device/mandates).
func (p *Phone) Mandates(ctx context.Context) ([]Mandate, error) {
	var resp struct {
		Mandates []Mandate `json:"mandates"`
	}
	if err := p.call(ctx, http.MethodGet, "/device/mandates", nil, &resp, true); err != nil {
		return nil, fmt.Errorf("phone: mandates: %w", err)
	}
	return resp.Mandates, nil
}

// RevokeMandate revokes mandate id (POST /device/mandates/{id}/revoke):
// later requests under it take the ordinary path and its tokens stop.
func (p *Phone) RevokeMandate(ctx context.Context, id string) error {
	if err := p.call(ctx, http.MethodPost, "/device/mandates/"+url.PathEscape(id)+"/revoke", map[string]string{}, nil, true); err != nil {
		return fmt.Errorf("phone: revoke mandate %s: %w", id, err)
	}
	return nil
}

// pageMandate is one mandate, ready to show.
type pageMandate struct {
	ID, Intent, Agent, Status string
	Spent, Uses, Until        string
	Actions                   []string
	Taken                     []string
	Active                    bool
}

func showMandate(m Mandate, loc *time.Location) pageMandate {
	pm := pageMandate{ID: m.ID, Intent: m.Intent, Agent: m.ClientName, Status: m.Status, Active: m.Status == "active",
		Until: m.ValidUntil.In(loc).Format("2006-01-02 15:04 MST")}
	if pm.Agent == "" {
		pm.Agent = m.ClientID
	}
	for _, a := range m.Actions {
		pm.Actions = append(pm.Actions, describeTemplate(decodeEntry(a)))
	}
	pm.Uses = fmt.Sprintf("used %d", m.Uses)
	if m.MaxUses > 0 {
		pm.Uses += fmt.Sprintf(" of %d", m.MaxUses)
	}
	if m.Budget != nil {
		pm.Spent = "spent " + money(json.Number(m.Spent), m.Budget.Currency) + " of " + money(m.Budget.Amount, m.Budget.Currency)
	}
	for _, t := range m.Taken {
		var ds []map[string]any
		line := t.RequestID
		if decodeInto(t.AuthorizationDetails, &ds) == nil {
			parts := make([]string, 0, len(ds))
			for _, d := range ds {
				parts = append(parts, describeDetail(d))
			}
			line = strings.Join(parts, "; ")
		}
		pm.Taken = append(pm.Taken, line+" · "+t.At.In(loc).Format("2006-01-02 15:04"))
	}
	return pm
}

func decodeInto(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber() // amounts as sent
	return dec.Decode(v)
}

func decodeEntry(b []byte) map[string]any {
	m := map[string]any{}
	_ = decodeInto(b, &m)
	return m
}

// describeTemplate is one permitted action of a mandate in plain words.
func describeTemplate(t map[string]any) string {
	switch t["type"] {
	case "agent_action":
		return strings.TrimSpace(plain(t["action"]) + " " + plain(t["resource"]))
	case "payment_initiation":
		s := "pay up to " + money(t["max_amount"], t["currency"]) + " per payment"
		if c, ok := t["creditor"].(map[string]any); ok {
			return s + " to " + plain(c["name"])
		}
		return s + " to anyone"
	case "mcp_tool_call":
		srv, _ := t["server"].(map[string]any)
		return "run the tool " + plain(t["tool"]) + " on " + plain(srv["name"])
	}
	return describeDetail(t)
}

// describeMandate is a mandate request as lines: the intent, each
// permitted action, the budget, the uses and the end.
func describeMandate(d map[string]any, loc *time.Location) []string {
	lines := []string{"Approve once: " + plain(d["intent"])}
	acts, _ := d["actions"].([]any)
	for _, a := range acts {
		if t, ok := a.(map[string]any); ok {
			lines = append(lines, "may "+describeTemplate(t))
		}
	}
	if b, ok := d["budget"].(map[string]any); ok {
		lines = append(lines, "budget "+money(b["amount"], b["currency"])+" in all")
	} else {
		lines = append(lines, "no budget")
	}
	if n := plain(d["max_uses"]); n != "" {
		lines = append(lines, "at most "+n+" requests")
	}
	if t, err := time.Parse(time.RFC3339, plain(d["valid_until"])); err == nil {
		lines = append(lines, "until "+t.In(loc).Format("2006-01-02 15:04 MST"))
	}
	return lines
}

// handleRevokeMandate revokes the mandate chosen on the page, then sends
// the browser back to the list (303).
func (p *Phone) handleRevokeMandate(w http.ResponseWriter, r *http.Request) {
	id, ok := p.pageForm(w, r)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	msg := "Mandate revoked."
	if err := p.RevokeMandate(ctx, id); err != nil {
		msg = "Could not revoke the mandate: " + err.Error()
	}
	p.mu.Lock()
	p.flash = msg
	p.mu.Unlock()
	http.Redirect(w, r, "/", http.StatusSeeOther)
}
