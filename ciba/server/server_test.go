package server

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
)

// TestRouteTable: the endpoints served, and only those (docs/api.md).
func TestRouteTable(t *testing.T) {
	s := newTestServer(t)
	want := []string{
		"GET /.well-known/openid-configuration", "GET /.well-known/oauth-authorization-server", "GET /jwks.json",
		"POST /bc-authorize", "POST /token", "POST /revoke", "POST /introspect",
		"GET /healthz", "GET /readyz", "GET /metrics",
		"POST /admin/clients", "GET /admin/clients", "GET /admin/clients/:id", "PATCH /admin/clients/:id",
		"DELETE /admin/clients/:id", "POST /admin/users", "GET /admin/users", "GET /admin/users/:id",
		"PATCH /admin/users/:id", "DELETE /admin/users/:id", "POST /admin/users/:id/enrollments",
		"POST /admin/agents/:client_id/revoke", "GET /admin/audit", "POST /admin/audit/verify",
		"POST /device/enroll", "GET /device/requests", "GET /device/requests/:id", "POST /device/requests/:id/decision",
		"PUT /device/push-subscription", "DELETE /device", "GET /device/grants", "POST /device/grants/:id/revoke",
		"GET /.well-known/authzen-configuration", "POST /access/v1/evaluation", "POST /access/v1/evaluations",
		"GET /app",
		"GET /device/mandates", "POST /device/mandates/:id/revoke", "GET /admin/mandates", "GET /admin/mandates/:id",
		"POST /admin/mandates/:id/revoke", "GET /admin/users/:id/devices", "GET /admin/mandates/:id/record",
	}
	var got []string
	for _, r := range s.h.(*echo.Echo).Routes() {
		if strings.HasPrefix(r.Path, "/app/") || strings.HasPrefix(r.Path, "/test/") || r.Method == echo.RouteNotFound {
			continue // the phone app's files; this test's own routes
		}
		got = append(got, r.Method+" "+r.Path)
	}
	slices.Sort(want)
	slices.Sort(got)
	got = slices.Compact(got)
	if !slices.Equal(got, want) {
		t.Errorf("routes:\n got %q\nwant %q", got, want)
	}
	// Without admin.Rules, /admin/rules is not served.
	if rec := s.do("GET", "/admin/rules", "", "", "Authorization", "Bearer "+testAdminToken); rec.Code != 404 {
		t.Errorf("/admin/rules without Rules: %d", rec.Code)
	}
}

// errorBody is the RFC 6749 §5.2 error body.
type errorBody struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

// TestErrorRenderer: every kind of error becomes the RFC 6749 §5.2 body
// with its status, code and the headers its RFC requires; never a stack
// or a Go error text.
func TestErrorRenderer(t *testing.T) {
	s := newTestServer(t)
	cases := []struct {
		name, method, path string
		status             int
		code               string
		header             map[string]string
	}{
		{"oauth error keeps its status and headers", "GET", "/test/oauth", 400, "invalid_grant", map[string]string{"X-Test": "kept"}},
		{"unclassified error is a 500 without its text", "GET", "/test/plain", 500, "server_error", nil},
		{"panic is a 500", "GET", "/test/panic", 500, "server_error", nil},
		{"passed deadline is a 503 with Retry-After", "GET", "/test/unavailable", 503, "temporarily_unavailable",
			map[string]string{"Retry-After": "5"}},
		{"echo 401", "GET", "/test/echo401", 401, "invalid_token", nil},
		{"echo 413", "GET", "/test/echo413", 413, "request_too_large", nil},
		{"other echo error keeps its status", "GET", "/test/echo400", 400, "invalid_request", nil},
		{"unknown path", "GET", "/no/such/path", 404, "not_found", nil},
		{"wrong method names the allowed ones", "GET", "/token", 405, "method_not_allowed", map[string]string{"Allow": "OPTIONS, POST"}},
		{"admin without token", "GET", "/admin/clients", 401, "invalid_token",
			map[string]string{"WWW-Authenticate": `Bearer realm="countersign-admin"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := s.do(c.method, c.path, "", "")
			var b errorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &b); err != nil {
				t.Fatalf("body %q: %v", rec.Body, err)
			}
			if rec.Code != c.status || b.Error != c.code || b.Description == "" {
				t.Errorf("got %d %+v, want %d %s", rec.Code, b, c.status, c.code)
			}
			if strings.Contains(rec.Body.String(), "secret detail") || strings.Contains(rec.Body.String(), "goroutine") {
				t.Errorf("body leaks the error: %s", rec.Body)
			}
			if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control %q", cc)
			}
			if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type %q", ct)
			}
			for k, v := range c.header {
				if got := rec.Header().Get(k); got != v {
					t.Errorf("%s: %q, want %q", k, got, v)
				}
			}
		})
	}
}

// TestHeadErrorHasNoBody: HEAD gets the status of the error, no body.
func TestHeadErrorHasNoBody(t *testing.T) {
	s := newTestServer(t)
	rec := s.do("HEAD", "/no/such/path", "", "")
	if rec.Code != 404 || rec.Body.Len() != 0 {
		t.Errorf("HEAD: %d %q", rec.Code, rec.Body)
	}
}

// TestStoreOutageIs503: with Redis gone, an endpoint that needs it
// answers 503 temporarily_unavailable with Retry-After, never 500.
func TestStoreOutageIs503(t *testing.T) {
	s := newTestServer(t)
	s.redis.Mini.Close()
	rec := s.do("GET", "/admin/clients", "", "", "Authorization", "Bearer "+testAdminToken)
	var b errorBody
	_ = json.Unmarshal(rec.Body.Bytes(), &b)
	if rec.Code != 503 || b.Error != "temporarily_unavailable" || rec.Header().Get("Retry-After") != "5" {
		t.Errorf("got %d %+v Retry-After %q", rec.Code, b, rec.Header().Get("Retry-After"))
	}
}

// TestFormBodies: the OAuth endpoints take a form body only, each
// parameter once (RFC 6749 §3.1, §3.2), and at most MaxBody bytes.
func TestFormBodies(t *testing.T) {
	s := newTestServer(t)
	const form = "application/x-www-form-urlencoded"
	big := "scope=" + strings.Repeat("a", MaxBody)
	cases := []struct {
		name, path, ct, body string
		status               int
		code, description    string
	}{
		{"repeated parameter at /token", "/token", form, "grant_type=a&grant_type=b", 400, "invalid_request", "parameter grant_type is repeated"},
		{"repeated parameter at /bc-authorize", "/bc-authorize", form, "scope=openid&scope=openid", 400, "invalid_request", "parameter scope is repeated"},
		{"repeated parameter at /revoke", "/revoke", form, "token=a&token=b", 400, "invalid_request", "parameter token is repeated"},
		{"repeated parameter at /introspect", "/introspect", form, "token=a&token=b", 400, "invalid_request", "parameter token is repeated"},
		{"JSON body at /token", "/token", "application/json", `{"grant_type":"x"}`, 400, "invalid_request", "the body must be application/x-www-form-urlencoded"},
		{"no content type at /bc-authorize", "/bc-authorize", "", "scope=openid", 400, "invalid_request", "the body must be application/x-www-form-urlencoded"},
		{"bad encoding", "/token", form, "grant_type=%zz", 400, "invalid_request", "the body is not valid form encoding"},
		{"form with charset is a form", "/token", form + "; charset=utf-8", "grant_type=a&grant_type=b", 400, "invalid_request", "parameter grant_type is repeated"},
		{"body over 64 KiB", "/token", form, big, 413, "request_too_large", "request body over 64 KiB"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := s.do("POST", c.path, c.ct, c.body)
			var b errorBody
			_ = json.Unmarshal(rec.Body.Bytes(), &b)
			if rec.Code != c.status || b.Error != c.code || b.Description != c.description {
				t.Errorf("got %d %+v, want %d %s %q", rec.Code, b, c.status, c.code, c.description)
			}
		})
	}
}

// TestSuccessContentTypes: JSON endpoints answer JSON; every answer
// carries a request id.
func TestSuccessContentTypes(t *testing.T) {
	s := newTestServer(t)
	for _, path := range []string{"/.well-known/openid-configuration", "/jwks.json", "/healthz", "/readyz"} {
		rec := s.do("GET", path, "", "")
		if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
			t.Errorf("%s: %d %q", path, rec.Code, rec.Header().Get("Content-Type"))
		}
		if len(rec.Header().Get("X-Request-ID")) != 22 {
			t.Errorf("%s: X-Request-ID %q", path, rec.Header().Get("X-Request-ID"))
		}
	}
}

// TestAuditEndpoint: /admin/audit passes its query to admin and answers
// an empty trail as [] (never null), a bad filter as 400.
func TestAuditEndpoint(t *testing.T) {
	s := newTestServer(t)
	auth := []string{"Authorization", "Bearer " + testAdminToken}
	rec := s.do("GET", "/admin/audit?user=nobody", "", "", auth...)
	if rec.Code != 200 || strings.TrimSpace(rec.Body.String()) != `{"entries":[]}` {
		t.Errorf("empty trail: %d %s", rec.Code, rec.Body)
	}
	rec = s.do("GET", "/admin/audit?limit=0", "", "", auth...)
	var b errorBody
	_ = json.Unmarshal(rec.Body.Bytes(), &b)
	if rec.Code != 400 || b.Error != "invalid_request" || b.Description != "limit must be 1 to 1000" {
		t.Errorf("limit=0: %d %+v", rec.Code, b)
	}
	if rec := s.do("POST", "/admin/audit/verify", "", "", auth...); rec.Code != 200 {
		t.Errorf("verify: %d %s", rec.Code, rec.Body)
	}
}
