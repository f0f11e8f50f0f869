package server

import (
	"encoding/json"
	"testing"
)

// TestMandateRoutes: the mandate routes answer the documented shapes and
// RFC-form errors (the mandate flows themselves are tested end to end in
// cmd/countersign).
func TestMandateRoutes(t *testing.T) {
	s := newTestServer(t)
	auth := []string{"Authorization", "Bearer " + testAdminToken}
	if rec := s.do("GET", "/admin/mandates?user=alice", "", "", auth...); rec.Code != 200 || rec.Body.String() != `{"mandates":[]}`+"\n" ||
		rec.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("empty list: %d %q %v", rec.Code, rec.Body, rec.Header())
	}
	for _, c := range []struct{ method, path, code string }{
		{"GET", "/admin/mandates/nosuchmandate0000000000", "not_found"},
		{"GET", "/admin/mandates/nosuchmandate0000000000/record", "not_found"},
		{"POST", "/admin/mandates/nosuchmandate0000000000/revoke", "not_found"},
		{"GET", "/admin/users/nobody/devices", "not_found"},
	} {
		rec := s.do(c.method, c.path, "", "", auth...)
		var e errorBody
		if rec.Code != 404 || json.Unmarshal(rec.Body.Bytes(), &e) != nil || e.Error != c.code || e.Description == "" {
			t.Errorf("%s %s: %d %s", c.method, c.path, rec.Code, rec.Body)
		}
	}
	if rec := s.do("POST", "/admin/users", "application/json", `{"id":"alice"}`, auth...); rec.Code != 201 {
		t.Fatalf("create user: %d %s", rec.Code, rec.Body)
	}
	if rec := s.do("GET", "/admin/users/alice/devices", "", "", auth...); rec.Code != 200 || rec.Body.String() != `{"devices":[]}`+"\n" {
		t.Fatalf("devices of alice: %d %s", rec.Code, rec.Body)
	}
	for _, c := range []struct{ method, path string }{
		{"GET", "/admin/mandates"}, {"GET", "/admin/users/alice/devices"}, {"GET", "/device/mandates"},
		{"POST", "/device/mandates/x/revoke"},
	} {
		rec := s.do(c.method, c.path, "", "")
		var e errorBody
		if rec.Code != 401 || json.Unmarshal(rec.Body.Bytes(), &e) != nil || e.Error != "invalid_token" {
			t.Errorf("%s %s without credentials: %d %s", c.method, c.path, rec.Code, rec.Body)
		}
	}
}
