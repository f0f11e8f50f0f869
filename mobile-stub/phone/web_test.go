package phone

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func get(t *testing.T, u string) (*http.Response, string) {
	t.Helper()
	resp, err := noRedirect.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func postForm(t *testing.T, u string, form url.Values, header map[string]string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func TestWebPageListsAndDecides(t *testing.T) {
	now := time.Date(2026, 1, 15, 12, 2, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	f := newFakeServer(t)
	f.now = clock
	p := enrolledPhone(t, f, clock)
	f.addRequest("req-pay", viewPayment)
	f.addRequest("req-xss", `{"id":"req-xss","agent":{"client_id":"evil","client_name":"<b>Evil</b>"},"binding_message":"<script>alert(1)</script>","risk":{"level":"low","score":0},"expires_at":"2026-01-15T12:00:00Z","status":"pending"}`)
	// The summary comes from the request's push (VAPID times follow the
	// real clock, so the push is handed over directly here).
	p.deliver(Push{Type: "approval_request", ID: "req-pay", Summary: "Transfer to Ünïcode"})

	resp, body := get(t, p.URL())
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("GET / = %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if csp := resp.Header.Get("Content-Security-Policy"); csp != contentSecurityPolicy || !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "script-src") {
		t.Errorf("CSP %q", csp)
	}
	if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("headers %v", resp.Header)
	}
	for _, want := range []string{
		"user <b>alice</b>",
		`<h2 dir="auto">Shopping agent</h2>`,
		"agent <code><bdi>shopper</bdi></code> · owner <bdi>acme</bdi>",
		"“<bdi>Pay 25 000 € to Ünïcode</bdi>”",
		`<p class="summary" dir="auto">Transfer to Ünïcode</p>`,
		`<li dir="auto">payment_initiation · 25,000.00 EUR · creditorName Ünïcode €</li>`,
		`<span class="level">high risk</span> · score 75`,
		"<bdi>The amount is above your spending limit.</bdi> <small>(<bdi>payment-over-limit</bdi>)</small>",
		"Expires 12:05:00 UTC (in 3m0s)",
		"Expires 12:00:00 UTC (expired)",
		`<article class="request risk-high">`,
		`<input type="hidden" name="csrf" value="` + p.csrf + `">`,
		`<input type="hidden" name="id" value="req-pay">`,
		`<button name="decision" value="approve" class="approve">Approve</button>`,
		`<button name="decision" value="deny" class="deny">Deny</button>`,
		"&lt;script&gt;alert(1)&lt;/script&gt;",
		`<h2 dir="auto">&lt;b&gt;Evil&lt;/b&gt;</h2>`,
		`&#34;amount&#34;: 25000.00`, // the exact JSON, indented
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(body, "<script") || strings.Contains(body, "style=") {
		t.Error("page has a script or an inline style")
	}
	// The newest request comes first.
	if strings.Index(body, "req-xss") > strings.Index(body, "req-pay") {
		t.Error("requests are not newest first")
	}

	css, cssBody := get(t, p.URL()+"static/app.css")
	if css.StatusCode != 200 || css.Header.Get("Content-Type") != "text/css; charset=utf-8" || !strings.Contains(cssBody, ".approve") {
		t.Errorf("GET /static/app.css = %d %s", css.StatusCode, css.Header.Get("Content-Type"))
	}

	// A forged form (no token) and a cross-site post change nothing.
	forged := postForm(t, p.URL()+"decide", url.Values{"id": {"req-pay"}, "decision": {"approve"}, "csrf": {"guess"}}, nil)
	crossSite := postForm(t, p.URL()+"decide", url.Values{"id": {"req-pay"}, "decision": {"approve"}, "csrf": {p.csrf}},
		map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"})
	if forged.StatusCode != http.StatusForbidden || crossSite.StatusCode != http.StatusForbidden {
		t.Errorf("forged %d, cross-site %d; want 403, 403", forged.StatusCode, crossSite.StatusCode)
	}
	if f.decision("req-pay") != nil {
		t.Fatal("a forged form decided the request")
	}
	if bad := postForm(t, p.URL()+"decide", url.Values{"id": {"req-pay"}, "decision": {"sure"}, "csrf": {p.csrf}}, nil); bad.StatusCode != http.StatusBadRequest {
		t.Errorf("decision sure: %d, want 400", bad.StatusCode)
	}

	// Approve from the page: the stub signs and posts, then shows the list.
	ok := postForm(t, p.URL()+"decide", url.Values{"id": {"req-pay"}, "decision": {"approve"}, "csrf": {p.csrf}},
		map[string]string{"Sec-Fetch-Site": "same-origin"})
	if ok.StatusCode != http.StatusSeeOther || ok.Header.Get("Location") != "/" {
		t.Fatalf("POST /decide = %d Location %q, want 303 /", ok.StatusCode, ok.Header.Get("Location"))
	}
	if c := f.decision("req-pay"); c["decision"] != "approve" {
		t.Fatalf("server recorded %v", c)
	}
	_, body = get(t, p.URL())
	if !strings.Contains(body, `<p class="flash" role="status">Approved.</p>`) || strings.Contains(body, `value="req-pay"`) {
		t.Errorf("after approval the page shows no confirmation or still lists the request")
	}
	// Deciding it again reports the conflict in words.
	postForm(t, p.URL()+"decide", url.Values{"id": {"req-pay"}, "decision": {"deny"}, "csrf": {p.csrf}}, nil)
	if _, body = get(t, p.URL()); !strings.Contains(body, "This request was already decided or has expired.") {
		t.Error("a refused decision was not explained")
	}
}

func TestWebPageBeforeEnrollment(t *testing.T) {
	p, _ := New("http://127.0.0.1:1", Options{})
	t.Cleanup(func() { _ = p.Close() })
	if err := p.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	resp, body := get(t, p.URL())
	if resp.StatusCode != 200 || !strings.Contains(body, "Not enrolled.") || strings.Contains(body, "<form") {
		t.Errorf("GET / before enrollment = %d %q", resp.StatusCode, body)
	}
}

func TestDescribeDetail(t *testing.T) {
	cases := []struct {
		in   map[string]any
		want string
	}{
		{map[string]any{"type": "payment_initiation", "action": "transfer", "amount": 25000.0, "currency": "EUR"}, "payment_initiation · transfer · 25,000.00 EUR"},
		{map[string]any{"type": "payment_initiation", "instructedAmount": map[string]any{"amount": "123.50", "currency": "EUR"}, "creditorName": "Merchant A"}, "payment_initiation · 123.50 EUR · creditorName Merchant A"},
		{map[string]any{"type": "payment_initiation", "amount": json.Number("1234567.5"), "currency": "EUR", "creditor": map[string]any{"name": "ACME"}}, "payment_initiation · 1,234,567.50 EUR · to ACME"},
		{map[string]any{"type": "payment_initiation", "amount": json.Number("12345678901234567890.125"), "currency": "USD"}, "payment_initiation · 12,345,678,901,234,567,890.125 USD"},
		{map[string]any{"type": "payment_initiation", "amount": "250000", "currency": "JPY"}, "payment_initiation · 250,000 JPY"},
		{map[string]any{"type": "payment_initiation", "amount": json.Number("999"), "currency": "EUR"}, "payment_initiation · 999.00 EUR"},
		{map[string]any{"type": "agent_action", "actions": []any{"read", "list"}, "locations": []any{"https://api.example.com"}}, "agent_action · read, list · at https://api.example.com"},
		{map[string]any{"type": "x", "amount": 1e6}, "x · 1,000,000"},
		{map[string]any{"zeta": 1, "alpha": 2}, "details: alpha, zeta"},
	}
	for _, c := range cases {
		if got := describeDetail(c.in); got != c.want {
			t.Errorf("describeDetail(%v) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestWebPageTimesAndCause: every time on the page is in the phone's time
// zone, which the page names (expiry was UTC while reasons spoke of the
// user's time), and a request a rule sent to the phone says so instead of a
// score under the threshold.
func TestWebPageTimesAndCause(t *testing.T) {
	now := time.Date(2026, 1, 15, 12, 2, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	f := newFakeServer(t)
	f.now = clock
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(f.srv.URL, Options{Now: clock, Name: "test phone", Location: berlin})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	if err := p.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := p.Enroll(t.Context(), enrollCode); err != nil {
		t.Fatal(err)
	}
	f.addRequest("req-rule", `{"id":"req-rule","agent":{"client_id":"shopper","client_name":"שלום agent"},
		"authorization_details":[{"type":"payment_initiation","amount":25000,"currency":"EUR","creditor":{"name":"ACME"}}],
		"risk":{"level":"high","score":40,"required_by":["payment-over-limit","acr_values"],
		"reasons":[{"rule":"payment-over-limit","reason":"The amount is above your spending limit."},{"rule":"night","reason":"Payment at 13:00 your time."}]},
		"expires_at":"2026-01-15T12:05:00Z","status":"pending"}`)
	_, body := get(t, p.URL())
	for _, want := range []string{
		"Times are in this phone's time zone, Europe/Berlin.",
		"Expires 13:05:00 CET (in 3m0s)",
		`<span class="level">high risk</span> · required by rule <bdi>payment-over-limit</bdi>, the agent's request</p>`,
		`<h2 dir="auto">שלום agent</h2>`,
		`<li dir="auto">payment_initiation · 25,000.00 EUR · to ACME</li>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(body, "UTC") || strings.Contains(body, "score 40") {
		t.Errorf("page mixes zones or shows the score as the cause:\n%s", body)
	}
}
