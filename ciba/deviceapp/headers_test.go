package deviceapp

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// Every answer of the app, its HTML shell first, carries the headers that
// keep it from being framed, sniffed, leaking its URL or reaching sensors.
func TestSecurityHeadersOnEveryPage(t *testing.T) {
	h := Handler()
	for _, p := range []string{"/app", "/app/", "/app/index.html", "/app/sw.js", "/app/no-such-file"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, p, nil))
		hd := rec.Header()
		want := map[string]string{"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"}
		for k, v := range want {
			if hd.Get(k) != v {
				t.Errorf("%s: %s = %q, want %q", p, k, hd.Get(k), v)
			}
		}
		csp := hd.Get("Content-Security-Policy")
		if !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
			t.Errorf("%s: CSP %q", p, csp)
		}
		if !strings.Contains(hd.Get("Permissions-Policy"), "camera=()") {
			t.Errorf("%s: Permissions-Policy %q", p, hd.Get("Permissions-Policy"))
		}
	}
}
