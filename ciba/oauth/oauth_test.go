package oauth_test

import (
	"testing"

	"github.com/countersign/countersign/ciba/oauth"
)

func TestStatusesAndCleanDescriptions(t *testing.T) {
	for code, status := range map[string]int{oauth.InvalidRequest: 400, oauth.InvalidClient: 401, oauth.AccessDenied: 403,
		oauth.NotFound: 404, oauth.MethodNotAllowed: 405, oauth.Conflict: 409, oauth.RequestEntityTooLarge: 413,
		oauth.ServerError: 500, oauth.SlowDown: 400, oauth.InvalidDPoPProof: 400} {
		if got := oauth.New(code, "x").Status; got != status {
			t.Errorf("%s: %d, want %d", code, got, status)
		}
	}
	// RFC 6749 §5.2: no control characters, no '"' or '\' in error_description.
	e := oauth.New(oauth.InvalidRequest, "bad %q\n\tvalue\\ é", "scope")
	if e.Description != "bad scope value é" {
		t.Fatalf("description %q", e.Description)
	}
	c := oauth.Client("nope")
	if c.Status != 401 || c.Header.Get("WWW-Authenticate") == "" {
		t.Fatalf("invalid_client without its challenge: %+v", c)
	}
	if r := oauth.New(oauth.SlowDown, "wait").WithStatus(429).WithHeader("Retry-After", "3"); r.Status != 429 || r.Header.Get("Retry-After") != "3" {
		t.Fatalf("%+v", r)
	}
}

func TestWithReturnsCopies(t *testing.T) {
	shared := oauth.New(oauth.InvalidGrant, "shared").WithHeader("X-One", "1")
	shared.Extra = map[string]any{"problems": []string{"a"}}
	derived := shared.WithStatus(429).WithHeader("Retry-After", "3")
	derived.Extra["more"] = true
	if shared.Status != 400 || shared.Header.Get("Retry-After") != "" || shared.Header.Get("X-One") != "1" || len(shared.Extra) != 1 {
		t.Fatalf("deriving changed the shared error: %+v", shared)
	}
	if derived.Status != 429 || derived.Header.Get("Retry-After") != "3" || derived.Header.Get("X-One") != "1" {
		t.Fatalf("derived: %+v", derived)
	}
}
