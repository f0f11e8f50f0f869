package main

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// The phone web app in Chromium: a mandate request shown as the intent,
// each permitted action in plain words, the budget, the end and the agent;
// approved with the device key; then the Mandates page with what was spent
// and taken, and Revoke.
func TestBrowserMandate(t *testing.T) {
	tn := startNode(t, func(c *Config) { c.MaxPushesPerMinute = 0 })
	mountApp(tn)
	realTime(tn)
	id, secret := setup(t, tn)
	p := openBrowser(t, tn)
	deviceID := p.enroll("alice", "Test phone")
	ciba := func(authReqID string) reply {
		return tn.post("/token", id, secret, url.Values{"grant_type": {"urn:openid:params:grant-type:ciba"}, "auth_req_id": {authReqID}})
	}

	r := tn.post("/bc-authorize", id, secret, url.Values{"scope": {"openid"}, "login_hint": {"alice"},
		"binding_message": {"Trip 7"}, "authorization_details": {travelMandate(tn.clock.Now())}})
	if r.Status != 200 {
		t.Fatalf("mandate request: %d %s", r.Status, r.Raw)
	}
	authReqID := r.str("auth_req_id")
	p.go2("#/requests/" + authReqID)
	p.wait(`document.querySelector("#mandate-intent")?.textContent === "Book my travel for the conference"`)
	if s := p.text("h1"); s != "Trip planner asks: Act for you within: Book my travel for the conference" {
		t.Fatalf("title: %q", s)
	}
	var actions []string
	p.eval(`[...document.querySelectorAll("#mandate-actions li")].map(li => li.textContent)`, &actions)
	want := []string{"Read calendar", "Search flights", "Search hotels", "Pay up to €2,000.00 per payment to anyone", "Write calendar"}
	if strings.Join(actions, "|") != strings.Join(want, "|") {
		t.Fatalf("permitted actions: %q, want %q", actions, want)
	}
	for sel, want := range map[string]string{"#mandate-budget": "Up to €2,000.00 in all", "#mandate-uses": "At most 20 requests",
		"#mandate-agent": "Trip planner"} {
		if s := p.text(sel); s != want {
			t.Fatalf("%s: %q, want %q", sel, s, want)
		}
	}
	if s := p.text("#mandate-until"); s == "" || s == "<missing>" {
		t.Fatalf("no end date: %q", s)
	}
	// The intent and every template value are the agent's: isolated.
	var leaks []string
	p.eval(`(() => { const out = [];
		if (document.querySelector("#mandate-intent").getAttribute("dir") !== "auto") out.push("intent");
		for (const li of document.querySelectorAll("#mandate-actions li[data-type=agent_action]")) if (li.querySelectorAll("bdi").length !== 2) out.push(li.textContent);
		if (!document.querySelector("#mandate-agent bdi")) out.push("agent");
		return out; })()`, &leaks)
	if len(leaks) > 0 {
		t.Fatalf("not isolated: %q", leaks)
	}
	p.shot("mandate-request")
	p.do(chromedp.Click(chromedp.ID("approve")))
	p.wait(`document.querySelector("#request-status")?.dataset.status === "approved"`)
	tok := ciba(authReqID)
	ds, _ := tok.Body["authorization_details"].([]any)
	if tok.Status != 200 || len(ds) != 1 {
		t.Fatalf("mandate token: %d %s", tok.Status, tok.Raw)
	}
	mid, _ := ds[0].(map[string]any)["mandate_id"].(string)

	// Inside the mandate: approved by it, no phone.
	r = tn.post("/bc-authorize", id, secret, url.Values{"scope": {"openid"}, "login_hint": {"alice"}, "mandate_id": {mid},
		"authorization_details": {trainTicket}})
	if r.Status != 200 {
		t.Fatalf("request under the mandate: %d %s", r.Status, r.Raw)
	}
	tok = ciba(r.str("auth_req_id"))
	if tok.Status != 200 {
		t.Fatalf("the purchase inside the mandate: %d %s", tok.Status, tok.Raw)
	}
	at := tn.verify(tok.str("access_token"), "at+jwt")
	if ap, _ := at["approval"].(map[string]any); ap["by"] != "mandate" || ap["mandate_id"] != mid || ap["device_id"] != deviceID {
		t.Fatalf("approval: %v", at["approval"])
	}
	rsID, rsSecret := tn.client(map[string]any{"client_id": "rs", "resource_server": true})
	active := func() bool {
		r := tn.post("/introspect", rsID, rsSecret, url.Values{"token": {tok.str("access_token")}})
		return r.Status == 200 && r.Body["active"] == true
	}
	if !active() {
		t.Fatal("the token under the mandate is inactive before revocation")
	}

	p.go2("#/mandates")
	sel := fmt.Sprintf(`#mandates li[data-mandate=%q]`, mid)
	p.wait(fmt.Sprintf(`document.querySelector(%q) !== null || document.querySelector("main .error")?.textContent`, sel))
	text := p.text(sel)
	for _, want := range []string{"Book my travel for the conference", "Trip planner", "Active until", "Spent €412.50 of €2,000.00",
		"Used 1 of 20 times", "Actions taken (1)", "Pay €412.50 to Rail Europe"} {
		if !strings.Contains(text, want) {
			t.Fatalf("mandate card lacks %q: %q", want, text)
		}
	}
	p.shot("mandates")
	p.do(chromedp.Click(chromedp.CSS(sel + ` button[data-mandate]`)))
	p.wait(fmt.Sprintf(`document.querySelector(%q)?.dataset.revoked === "true"`, sel))
	if got := tn.admin("GET", "/admin/mandates/"+mid, nil); got.str("status") != "revoked" {
		t.Fatalf("after Revoke in the page: %s", got.Raw)
	}
	if active() {
		t.Fatal("a token issued under the mandate is still active after Revoke")
	}
}

// shot writes the page at 390 px as docs/screenshots/NAME.png when
// COUNTERSIGN_SCREENSHOTS is set.
func (p *page) shot(name string) {
	p.t.Helper()
	if os.Getenv("COUNTERSIGN_SCREENSHOTS") == "" {
		return
	}
	p.eval(`document.activeElement?.blur(), true`, nil)
	png, err := chromedp.Run(p.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		p.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("..", "..", "docs", "screenshots", name+".png"), png, 0o644); err != nil {
		p.t.Fatal(err)
	}
}
