package phone

import (
	"net/http"
	"net/url"
	"testing"
	"time"
)

// The page and its stylesheet carry the headers that keep the page from
// being framed, sniffed or leaking its URL; a POST from another site is
// refused even with the page's token, and decides nothing.
func TestWebPageHeadersAndCrossSitePostRefused(t *testing.T) {
	now := time.Date(2026, 1, 15, 12, 2, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	f := newFakeServer(t)
	f.now = clock
	p := enrolledPhone(t, f, clock)
	f.addRequest("req-pay", viewPayment)
	for _, path := range []string{"", "static/app.css"} {
		resp, _ := get(t, p.URL()+path)
		want := map[string]string{"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
			"X-Frame-Options": "DENY", "Content-Security-Policy": contentSecurityPolicy,
			"Permissions-Policy": "camera=(), microphone=(), geolocation=()"}
		for k, v := range want {
			if resp.Header.Get(k) != v {
				t.Errorf("/%s: %s = %q, want %q", path, k, resp.Header.Get(k), v)
			}
		}
	}
	form := url.Values{"id": {"req-pay"}, "decision": {"approve"}, "csrf": {p.csrf}}
	for _, h := range []map[string]string{
		{"Sec-Fetch-Site": "cross-site"},
		{"Sec-Fetch-Site": "same-site"},
		{"Origin": "https://evil.example"},
		{"Origin": "null"},
	} {
		if r := postForm(t, p.URL()+"decide", form, h); r.StatusCode != http.StatusForbidden {
			t.Errorf("POST with %v: %d, want 403", h, r.StatusCode)
		}
	}
	if f.decision("req-pay") != nil {
		t.Fatal("a cross-site post decided the request")
	}
	if r := postForm(t, p.URL()+"decide", form, map[string]string{"Sec-Fetch-Site": "same-origin"}); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("same-origin post: %d, want 303", r.StatusCode)
	}
}
