package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/cdproto/serviceworker"
	"github.com/chromedp/chromedp"
	"github.com/gowebpki/jcs"
	"github.com/labstack/echo/v4"

	"github.com/countersign/countersign/ciba/deviceapp"
)

// The phone web app (ciba/deviceapp) driven in headless Chromium.
// Chromium comes from Debian's package: apt-get install -y chromium
// (or COUNTERSIGN_CHROMIUM=/path/to/chrome). COUNTERSIGN_SCREENSHOTS=1 also
// writes docs/screenshots/request-{light,dark}.png.

// chromium finds the browser; a missing one fails with the command that
// installs it (never a skip).
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("COUNTERSIGN_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no Chromium for the browser tests: apt-get install -y chromium (or set COUNTERSIGN_CHROMIUM)")
	return ""
}

// mountApp serves the app on the node when ciba/server does not yet.
func mountApp(tn *testNode) {
	tn.t.Helper()
	req, _ := http.NewRequest("GET", tn.URL+"/app/", nil)
	if tn.do(req).Status == 200 {
		return
	}
	e := tn.handler.(*echo.Echo)
	h := echo.WrapHandler(deviceapp.Handler())
	e.GET("/app", h)
	e.Any("/app/*", h)
}

// realTime moves the node's clock to the real time and keeps it there: the
// browser signs its Device and decision JWTs with its own (real) clock, and
// the server checks iat and exp against the node's clock.
func realTime(tn *testNode) {
	tn.clock.Advance(time.Until(tn.clock.Now()) * -1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if d := -time.Until(tn.clock.Now()); d > 0 {
					tn.clock.Advance(d)
				}
			}
		}
	}()
	tn.t.Cleanup(func() { cancel(); <-done })
}

// page is one headless Chromium tab.
type page struct {
	t   *testing.T
	ctx context.Context
	tn  *testNode
}

func openBrowser(t *testing.T, tn *testNode) *page {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)), chromedp.Headless, chromedp.NoSandbox, chromedp.NoFirstRun,
		chromedp.Flag("disable-gpu", true), chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-dev-shm-usage", true), chromedp.Flag("lang", "en-US"),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(390, 844),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	ctx, cancelTime := context.WithTimeout(ctx, 90*time.Second)
	p := &page{t: t, ctx: ctx, tn: tn}
	console := chromedp.Events(ctx, runtime.ConsoleAPICalled)
	exceptions := chromedp.Events(ctx, runtime.ExceptionThrown)
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	logs := make(chan string, 64)
	done := make(chan struct{}, 2)
	go func() {
		for ev, err := range console {
			if err != nil {
				break
			}
			var args []string
			for _, a := range ev.Args {
				args = append(args, string(a.Value)+a.Description)
			}
			select {
			case logs <- "console." + string(ev.Type) + ": " + strings.Join(args, " "):
			default:
			}
		}
		done <- struct{}{}
	}()
	go func() {
		for ev, err := range exceptions {
			if err != nil {
				break
			}
			msg := ev.ExceptionDetails.Text
			if ev.ExceptionDetails.Exception != nil {
				msg += " " + ev.ExceptionDetails.Exception.Description
			}
			select {
			case logs <- "exception: " + msg:
			default:
			}
		}
		done <- struct{}{}
	}()
	t.Cleanup(func() {
		cancelTime()
		cancelTab()
		cancelAlloc()
		<-done
		<-done
		close(logs)
		for l := range logs {
			t.Log("browser " + l)
		}
	})
	return p
}

// on is the page for a subtest.
func (p *page) on(t *testing.T) *page { c := *p; c.t = t; return &c }

func (p *page) do(steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	if err := chromedp.Do(p.ctx, steps...); err != nil {
		p.t.Fatalf("browser: %v\npage: %s", err, p.mainText())
	}
}

// eval runs JavaScript (awaiting a promise) and decodes its value into out.
func (p *page) eval(js string, out any) {
	p.t.Helper()
	raw, err := chromedp.Run(p.ctx, chromedp.Evaluate[[]byte](js, chromedp.EvalAwaitPromise))
	if err != nil {
		p.t.Fatalf("evaluate %s: %v", js, err)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			p.t.Fatalf("evaluate %s: %s: %v", js, raw, err)
		}
	}
}

// wait polls a JavaScript condition until it holds (or fails after 20 s).
func (p *page) wait(cond string) {
	p.t.Helper()
	_, err := chromedp.Run(p.ctx, chromedp.Poll[chromedp.Void](cond, chromedp.WithPollingTimeout(20*time.Second),
		chromedp.WithPollingInterval(50*time.Millisecond)))
	if err != nil {
		p.t.Fatalf("waiting for %s: %v\npage: %s", cond, err, p.mainText())
	}
}

func (p *page) text(sel string) string {
	p.t.Helper()
	var s string
	p.eval(fmt.Sprintf(`document.querySelector(%q)?.textContent ?? "<missing>"`, sel), &s)
	return s
}

func (p *page) mainText() string {
	ctx, cancel := context.WithTimeout(p.ctx, 2*time.Second)
	defer cancel()
	s, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("main")?.innerText ?? ""`))
	return s
}

func (p *page) go2(hash string) {
	p.t.Helper()
	p.eval(fmt.Sprintf(`location.hash = %q, true`, hash), nil)
}

// enroll opens an admin's enrollment link and enrolls the browser as name.
func (p *page) enroll(user, name string) string {
	p.t.Helper()
	r := p.tn.admin("POST", "/admin/users/"+user+"/enrollments", nil)
	if r.Status != 201 || r.str("url") != p.tn.URL+"/app/enroll?code="+r.str("code") {
		p.t.Fatalf("enrollment: %d %s", r.Status, r.Raw)
	}
	p.do(chromedp.Navigate(r.str("url")))
	p.wait(`document.querySelector("#enroll-form") !== null`)
	var code string
	p.eval(`document.querySelector("#code").value`, &code)
	if code != r.str("code") {
		p.t.Fatalf("code field %q, want %q", code, r.str("code"))
	}
	p.eval(`document.querySelector("#name").value = "", true`, nil)
	p.do(chromedp.SendKeys(chromedp.ID("name"), name), chromedp.Click(chromedp.ID("enroll")))
	p.wait(`document.querySelector("#enroll-note")?.textContent.startsWith("Enrolled.")`)
	devs, err := p.tn.db.Devices(p.ctx, user)
	if err != nil {
		p.t.Fatal(err)
	}
	for _, d := range devs {
		if d.Name == name {
			return d.ID
		}
	}
	p.t.Fatalf("no device %q for %s after enrollment (%d devices)", name, user, len(devs))
	return ""
}

func TestBrowserPhoneApp(t *testing.T) {
	tn := startNode(t, func(c *Config) { c.MaxPushesPerMinute = 0 })
	mountApp(tn)
	realTime(tn)
	id, secret := setup(t, tn)
	p := openBrowser(t, tn)
	deviceID := p.enroll("alice", "Test phone")

	// The key is a non-extractable P-256 key kept in IndexedDB.
	var key struct {
		Extractable bool
		Type, Curve string
		Usages      []string
	}
	p.eval(`new Promise((ok, fail) => { const r = indexedDB.open("countersign"); r.onerror = fail;
		r.onsuccess = () => { const g = r.result.transaction("kv").objectStore("kv").get("device");
		g.onsuccess = () => { const k = g.result.key; ok({extractable: k.extractable, type: k.type,
		curve: k.algorithm.namedCurve, usages: k.usages}); }; }; })`, &key)
	if key.Extractable || key.Type != "private" || key.Curve != "P-256" || strings.Join(key.Usages, ",") != "sign" {
		t.Fatalf("device key: %+v", key)
	}
	// Headless Chromium has no push service: the page says it polls, once.
	if s := p.text("#enroll-note"); s != "Enrolled." {
		t.Fatalf("enrollment note: %q", s)
	}
	if s := p.text("#poll-note"); !strings.Contains(s, "checks for new requests every few seconds") {
		t.Fatalf("poll note: %q", s)
	}
	var offNotes int
	p.eval(`[...document.querySelectorAll("main p")].filter(e => /notifications are off/i.test(e.textContent)).length`, &offNotes)
	if offNotes != 1 {
		t.Fatalf("%d notices say notifications are off, want 1: %s", offNotes, p.mainText())
	}
	var path string
	p.eval(`location.pathname + location.search`, &path)
	if path != "/app/" {
		t.Fatalf("the code stays in the address bar: %s", path)
	}

	t.Run("the service worker caches the app for offline use", func(t *testing.T) {
		p := p.on(t)
		var cached []string
		p.eval(`navigator.serviceWorker.ready.then(() => caches.keys()).then(ks =>
			caches.open(ks.find(k => k === "countersign-app-" + "`+deviceapp.Version()+`"))).then(c => c.keys())
			.then(rs => rs.map(r => new URL(r.url).pathname).sort())`, &cached)
		if len(cached) != 18 || cached[0] != "/app/" || !slices.Contains(cached, "/app/js/request.js") ||
			!slices.Contains(cached, "/app/manifest.webmanifest") {
			t.Fatalf("cached: %v", cached)
		}
	})

	t.Run("canonical JSON matches RFC 8785", func(t *testing.T) {
		in := `[{"b":1,"a":[1e21,1e-7,0.1,-0,100,1.5e300,123456789012,"€\n\u0001\"\\"],"é":true,"😀":null,"דּ":1,"10":2,"1":{"z":[],"y":{}}}]`
		var got string
		p.eval(fmt.Sprintf(`import("/app/js/jcs.js").then(m => m.canonicalize(JSON.parse(%q)))`, in), &got)
		want, err := jcs.Transform([]byte(in))
		if err != nil {
			t.Fatal(err)
		}
		if got != string(want) {
			t.Fatalf("page JCS\n got  %s\n want %s", got, want)
		}
	})

	var accessToken, grantID string
	t.Run("approve releases a device token", func(t *testing.T) {
		p := p.on(t)
		authReqID := tn.highRisk(id, secret, "Pay ACME 25k")
		p.go2("#/")
		item := fmt.Sprintf(`#pending a[data-id=%q]`, authReqID)
		p.wait(fmt.Sprintf(`document.querySelector(%q) !== null`, item))
		p.do(chromedp.Click(chromedp.CSS(item)))
		p.wait(`document.querySelector("#binding-message")?.textContent === "Pay ACME 25k"`)
		if s := p.text("h1"); s != "Trip planner asks: Pay €25,000.00 to ACME" {
			t.Fatalf("title: %q", s)
		}
		if s := p.text("#agent-owner"); s != "Agent run by acme · agent-1" {
			t.Fatalf("owner: %q", s)
		}
		if s := p.text("dd.amount"); s != "€25,000.00" {
			t.Fatalf("amount: %q", s)
		}
		if s := p.text("#risk .risk-level"); s != "High risk" {
			t.Fatalf("risk: %q", s)
		}
		// A rule required the phone: say so, not "score 40" under a threshold of 60.
		if s := p.text("#risk-label"); s != "High risk · required by rules payment-over-limit, daily-spend-over-limit" {
			t.Fatalf("risk cause: %q", s)
		}
		// Every agent-supplied string is isolated (<bdi> inline, dir=auto blocks).
		var leaks []string
		p.eval(`(() => { const out = [];
			const bdi = [...document.querySelectorAll("h1 bdi")].map(b => b.textContent);
			if (bdi.join("|") !== "Trip planner|ACME") out.push("h1 bdi: " + bdi.join("|"));
			if ([...document.querySelectorAll("#agent-owner bdi")].map(b => b.textContent).join() !== "acme") out.push("owner");
			for (const el of document.querySelectorAll("#binding-message, dd, #risk li, pre"))
				if (el.getAttribute("dir") !== "auto") out.push(el.tagName + " " + el.textContent);
			return out; })()`, &leaks)
		if len(leaks) > 0 {
			t.Fatalf("not isolated: %q", leaks)
		}
		var reasons []string
		p.eval(`[...document.querySelectorAll("#risk li")].map(li => li.dataset.rule + ": " + li.textContent)`, &reasons)
		if len(reasons) == 0 || !strings.HasPrefix(reasons[0], "payment-over-limit: ") {
			t.Fatalf("reasons: %q", reasons)
		}
		if s := p.text("#countdown"); !regexp.MustCompile(`^Expires in [45]:[0-5][0-9]$`).MatchString(s) {
			t.Fatalf("countdown: %q", s)
		}
		// Focus order follows reading order: Deny, then Approve.
		var order []string
		p.eval(`[...document.querySelectorAll("button")].map(b => b.id)`, &order)
		if strings.Join(order, ",") != "deny,approve" {
			t.Fatalf("button order: %v", order)
		}
		if os.Getenv("COUNTERSIGN_SCREENSHOTS") != "" {
			p.screenshots()
		}
		p.do(chromedp.Click(chromedp.ID("approve")))
		p.wait(`document.querySelector("#request-status")?.dataset.status === "approved"`)
		if s := p.text("#request-status"); !strings.HasPrefix(s, "Approved.") {
			t.Fatalf("status: %q", s)
		}
		if s := p.text("#toast"); s != "Approved" {
			t.Fatalf("toast: %q", s)
		}
		tok := tn.post("/token", id, secret, url.Values{"grant_type": {"urn:openid:params:grant-type:ciba"}, "auth_req_id": {authReqID}})
		if tok.Status != 200 {
			t.Fatalf("token after approval in the page: %d %s", tok.Status, tok.Raw)
		}
		at := tn.verify(tok.str("access_token"), "at+jwt")
		ap, _ := at["approval"].(map[string]any)
		if ap["by"] != "device" || ap["device_id"] != deviceID || ap["decision_jti"] == "" {
			t.Fatalf("approval claim: %v", at["approval"])
		}
		accessToken, grantID = tok.str("access_token"), fmt.Sprint(at["grant_id"])
		// The decision is in the device's own history.
		p.go2("#/history")
		row := fmt.Sprintf(`#history li[data-id=%q]`, authReqID)
		p.wait(fmt.Sprintf(`document.querySelector(%q) !== null`, row))
		if s := p.text(row); !strings.Contains(s, "Approved") || !strings.Contains(s, "Pay ACME 25k") {
			t.Fatalf("history: %q", s)
		}
		// The toast belonged to the request page: it does not follow.
		var toast string
		p.eval(`document.querySelector("#toast").textContent`, &toast)
		if toast != "" {
			t.Fatalf("toast after leaving the page: %q", toast)
		}
	})

	t.Run("deny gives access_denied", func(t *testing.T) {
		p := p.on(t)
		authReqID := tn.highRisk(id, secret, "Deny this one")
		p.go2("#/requests/" + authReqID)
		p.wait(`document.querySelector("#binding-message")?.textContent === "Deny this one"`)
		p.do(chromedp.Click(chromedp.ID("deny")))
		p.wait(`document.querySelector("#request-status")?.dataset.status === "denied"`)
		tok := tn.post("/token", id, secret, url.Values{"grant_type": {"urn:openid:params:grant-type:ciba"}, "auth_req_id": {authReqID}})
		wantError(t, tok, 400, "access_denied")
	})

	t.Run("countdown reaches zero and shows expired", func(t *testing.T) {
		p := p.on(t)
		r := tn.post("/bc-authorize", id, secret, url.Values{"scope": {"openid"}, "login_hint": {"alice"},
			"binding_message": {"Too late"}, "authorization_details": {bigPayment}, "requested_expiry": {"2"}})
		if r.Status != 200 || r.Body["expires_in"] != float64(2) {
			t.Fatalf("bc-authorize: %d %s", r.Status, r.Raw)
		}
		authReqID := r.str("auth_req_id")
		p.go2("#/requests/" + authReqID)
		p.wait(`document.querySelector("#binding-message")?.textContent === "Too late"`)
		p.wait(`document.querySelector("#countdown")?.textContent === "Expired"`)
		var disabled []bool
		p.eval(`[document.querySelector("#approve").disabled, document.querySelector("#deny").disabled]`, &disabled)
		if len(disabled) != 2 || !disabled[0] || !disabled[1] {
			t.Fatalf("buttons after expiry: %v", disabled)
		}
		p.wait(`document.querySelector("#request-status")?.dataset.status === "expired"`)
		tok := tn.post("/token", id, secret, url.Values{"grant_type": {"urn:openid:params:grant-type:ciba"}, "auth_req_id": {authReqID}})
		wantError(t, tok, 400, "expired_token")
	})

	t.Run("revoke a grant", func(t *testing.T) {
		p := p.on(t)
		if accessToken == "" {
			t.Fatal("no token from the approval subtest")
		}
		rsID, rsSecret := tn.client(map[string]any{"client_id": "rs", "resource_server": true})
		active := func() bool {
			r := tn.post("/introspect", rsID, rsSecret, url.Values{"token": {accessToken}})
			if r.Status != 200 {
				t.Fatalf("introspect: %d %s", r.Status, r.Raw)
			}
			return r.Body["active"] == true
		}
		if !active() {
			t.Fatal("token inactive before revocation")
		}
		p.go2("#/agents")
		sel := fmt.Sprintf(`#grants li[data-grant=%q]`, grantID)
		p.wait(fmt.Sprintf(`document.querySelector(%q) !== null || document.querySelector("main .error")?.textContent`, sel))
		if s := p.text(sel); !strings.Contains(s, "Trip planner") || !strings.Contains(s, "€25,000.00") {
			t.Fatalf("grant: %q (page: %s)", s, p.mainText())
		}
		p.do(chromedp.Click(chromedp.CSS(sel + " button")))
		p.wait(fmt.Sprintf(`document.querySelector(%q)?.dataset.revoked === "true"`, sel))
		if active() {
			t.Fatal("token still active after revoking its grant in the page")
		}
	})

	t.Run("a push shows a notification", func(t *testing.T) {
		p := p.on(t)
		// The browser has no push service here, so the stub phone receives
		// the server's real push and the test hands its plaintext to the
		// service worker through the DevTools protocol.
		stub := tn.enrollPhone("alice", "Stub")
		_, err := chromedp.CallBrowser(p.ctx, browser.SetPermission, browser.SetPermissionParams{
			Permission: &browser.PermissionDescriptor{Name: "notifications"}, Setting: browser.PermissionSettingGranted, Origin: tn.URL})
		if err != nil {
			t.Fatal(err)
		}
		regs := chromedp.Events(p.ctx, serviceworker.WorkerRegistrationUpdated)
		if _, err := chromedp.Call(p.ctx, serviceworker.Enable, cdp.Empty{}); err != nil {
			t.Fatal(err)
		}
		var regID serviceworker.RegistrationID
		for ev, err := range regs {
			if err != nil {
				t.Fatalf("no service worker registration: %v", err)
			}
			for _, r := range ev.Registrations {
				if r.ScopeURL == tn.URL+"/app/" && !r.IsDeleted {
					regID = r.RegistrationID
				}
			}
			if regID != "" {
				break
			}
		}
		authReqID := tn.highRisk(id, secret, "Push 7")
		push := waitPush(t, stub, authReqID)
		if _, err := chromedp.Call(p.ctx, serviceworker.DeliverPushMessage, serviceworker.DeliverPushMessageParams{
			Origin: tn.URL, RegistrationID: regID, Data: string(push.Raw)}); err != nil {
			t.Fatal(err)
		}
		p.wait(`navigator.serviceWorker.ready.then(r => r.getNotifications()).then(ns => ns.length > 0)`)
		var ns []struct{ Title, Body, Tag, ID string }
		p.eval(`navigator.serviceWorker.ready.then(r => r.getNotifications()).then(ns => ns.map(n =>
			({title: n.title, body: n.body, tag: n.tag, id: n.data?.id})))`, &ns)
		if len(ns) != 1 {
			t.Fatalf("notifications: %+v", ns)
		}
		n := ns[0]
		// Agent strings are isolated with U+2068 ... U+2069 (no markup in a notification).
		if n.Title != "\u2068Trip planner\u2069 asks for approval" || n.Tag != "request-"+authReqID || n.ID != authReqID ||
			!strings.Contains(n.Body, push.Summary) || !strings.Contains(n.Body, "Message: \u2068Push 7\u2069") || !strings.Contains(n.Body, "high risk") {
			t.Fatalf("notification: %+v (push %s)", n, push.Raw)
		}
	})
}

// screenshots writes the request view at 390 px wide, light and dark.
func (p *page) screenshots() {
	p.t.Helper()
	dir := filepath.Join("..", "..", "docs", "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		p.t.Fatal(err)
	}
	if _, err := chromedp.Call(p.ctx, emulation.SetDeviceMetricsOverride, emulation.SetDeviceMetricsOverrideParams{
		Width: 390, Height: 844, DeviceScaleFactor: 1, Mobile: true}); err != nil {
		p.t.Fatal(err)
	}
	p.eval(`document.activeElement?.blur(), document.getElementById("toast").textContent = "", true`, nil)
	for _, scheme := range []string{"light", "dark"} {
		if _, err := chromedp.Call(p.ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}}); err != nil {
			p.t.Fatal(err)
		}
		p.wait(fmt.Sprintf(`matchMedia("(prefers-color-scheme: %s)").matches`, scheme))
		png, err := chromedp.Run(p.ctx, chromedp.FullScreenshot(100))
		if err != nil {
			p.t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "request-"+scheme+".png"), png, 0o644); err != nil {
			p.t.Fatal(err)
		}
	}
	if _, err := chromedp.Call(p.ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{}); err != nil {
		p.t.Fatal(err)
	}
}
