package phone

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

const viewMandateRequest = `{"id":"req-m","agent":{"client_id":"trip","client_name":"Trip planner"},"binding_message":"Trip 7",
 "authorization_details":[{"type":"intent_mandate","intent":"Book my travel for the conference",
  "actions":[{"type":"agent_action","action":"read","resource":"calendar"},
   {"type":"payment_initiation","currency":"EUR","max_amount":2000},
   {"type":"mcp_tool_call","server":{"name":"flights"},"tool":"search"}],
  "budget":{"currency":"EUR","amount":2000},"max_uses":20,"valid_until":"2026-01-20T00:00:00Z"}],
 "risk":{"level":"high","score":0,"required_by":["mandate"]},"expires_at":"2026-01-15T12:05:00Z","status":"pending"}`

func mandateView() map[string]any {
	var m map[string]any
	_ = json.Unmarshal([]byte(`{"mandate_id":"M1","client_id":"trip","client_name":"Trip planner","user_id":"alice",
	 "intent":"Book my travel for the conference","actions":[{"type":"payment_initiation","currency":"EUR","max_amount":2000}],
	 "budget":{"currency":"EUR","amount":2000},"max_uses":20,"valid_until":"2026-01-20T00:00:00Z","created_at":"2026-01-15T11:00:00Z",
	 "spent":"412.50","uses":2,"status":"active","device_id":"dev-1","request_id":"req-m",
	 "taken":[{"request_id":"r2","at":"2026-01-15T11:30:00Z","authorization_details":[{"type":"payment_initiation","currency":"EUR","amount":"412.50","creditor":{"name":"Rail"}}],"amount":"412.50"},
	  {"request_id":"r1","at":"2026-01-15T11:10:00Z","authorization_details":[{"type":"agent_action","action":"read","resource":"calendar"}]}]}`), &m)
	return m
}

func TestWebPageShowsMandateRequestAndMandates(t *testing.T) {
	now := time.Date(2026, 1, 15, 12, 2, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	f := newFakeServer(t)
	f.now = clock
	p := enrolledPhone(t, f, clock)
	f.addRequest("req-m", viewMandateRequest)
	f.mandates = append(f.mandates, mandateView())

	_, body := get(t, p.URL())
	for _, want := range []string{
		`<li dir="auto">Approve once: Book my travel for the conference</li>`,
		`<li dir="auto">may read calendar</li>`,
		`<li dir="auto">may pay up to 2,000.00 EUR per payment to anyone</li>`,
		`<li dir="auto">may run the tool search on flights</li>`,
		`<li dir="auto">budget 2,000.00 EUR in all</li>`,
		`<li dir="auto">at most 20 requests</li>`,
		`<li dir="auto">until 2026-01-20 00:00 UTC</li>`,
		`<h3 dir="auto">Book my travel for the conference</h3>`,
		`agent <bdi>Trip planner</bdi> · active · until 2026-01-20 00:00 UTC`,
		`<p class="spent">spent 412.50 EUR of 2,000.00 EUR · used 2 of 20</p>`,
		`<li dir="auto">payment_initiation · 412.50 EUR · to Rail · 2026-01-15 11:30</li>`,
		`<li dir="auto">agent_action · read · resource calendar · 2026-01-15 11:10</li>`,
		`<form method="post" action="/mandates/revoke">`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(body, `class="error"`) {
		t.Errorf("page shows an error: %s", body)
	}

	if r := postForm(t, p.URL()+"mandates/revoke", url.Values{"id": {"M1"}, "csrf": {"guess"}}, nil); r.StatusCode != http.StatusForbidden {
		t.Fatalf("forged revoke: %d, want 403", r.StatusCode)
	}
	if f.mandates[0]["status"] != "active" {
		t.Fatal("a forged form revoked the mandate")
	}
	r := postForm(t, p.URL()+"mandates/revoke", url.Values{"id": {"M1"}, "csrf": {p.csrf}}, map[string]string{"Sec-Fetch-Site": "same-origin"})
	if r.StatusCode != http.StatusSeeOther || f.mandates[0]["status"] != "revoked" {
		t.Fatalf("revoke: %d, mandate %v", r.StatusCode, f.mandates[0]["status"])
	}
	_, body = get(t, p.URL())
	if !strings.Contains(body, `<p class="flash" role="status">Mandate revoked.</p>`) || !strings.Contains(body, "· revoked ·") ||
		strings.Contains(body, `action="/mandates/revoke"`) {
		t.Errorf("after revoking, the page shows no confirmation or still offers Revoke")
	}
	if len(f.problemList()) > 0 {
		t.Fatal(f.problemList())
	}
}

func TestMandatesClientAPI(t *testing.T) {
	f := newFakeServer(t)
	p := enrolledPhone(t, f, time.Now)
	f.mandates = append(f.mandates, mandateView())
	ctx := context.Background()
	ms, err := p.Mandates(ctx)
	if err != nil || len(ms) != 1 {
		t.Fatalf("Mandates: %v %v", ms, err)
	}
	m := ms[0]
	if m.ID != "M1" || m.Spent != "412.50" || m.Uses != 2 || m.MaxUses != 20 || m.Budget.Amount != "2000" || len(m.Taken) != 2 ||
		m.Taken[0].Amount != "412.50" || m.Status != "active" || m.RequestID != "req-m" {
		t.Fatalf("mandate %+v", m)
	}
	if err := p.RevokeMandate(ctx, "M1"); err != nil {
		t.Fatal(err)
	}
	if f.mandates[0]["status"] != "revoked" {
		t.Fatal("not revoked at the server")
	}
	var se *ServerError
	if err := p.RevokeMandate(ctx, "nope"); !errors.As(err, &se) || se.Status != 404 || se.Code != "not_found" {
		t.Fatalf("unknown mandate: %v", err)
	}
}
