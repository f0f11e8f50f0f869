package admin

import (
	"context"
	"errors"
	"testing"

	"github.com/countersign/countersign/ciba/oauth"
	"github.com/countersign/countersign/ciba/store"
)

// wantOAuth checks that err is the protocol error code with description
// (any description when desc is "").
func wantOAuth(t *testing.T, err error, code, desc string) {
	t.Helper()
	var oe *oauth.Error
	if !errors.As(err, &oe) {
		t.Fatalf("error %v, want %s %q", err, code, desc)
	}
	if oe.Code != code || desc != "" && oe.Description != desc {
		t.Errorf("got %s %q, want %s %q", oe.Code, oe.Description, code, desc)
	}
}

// TestClientMetadataValidation: each rule of client registration (RFC 7591
// §2, CIBA Core §4) refuses with invalid_client_metadata and stores nothing.
func TestClientMetadataValidation(t *testing.T) {
	s := newService(t)
	ctx := context.Background()
	cases := []struct{ name, body, code, desc string }{
		{"unknown member", `{"client_id":"c1","colour":"red"}`, oauth.InvalidRequest, ""},
		{"trailing data", `{"client_id":"c1"} {}`, oauth.InvalidRequest, "invalid JSON body: trailing data"},
		{"id reads as a flag", `{"client_id":"-x"}`, oauth.InvalidClientMetadata, "client_id must be 1-128 characters of letters, digits and ._:-"},
		{"id with a space", `{"client_id":"a b"}`, oauth.InvalidClientMetadata, "client_id must be 1-128 characters of letters, digits and ._:-"},
		{"unknown auth method", `{"client_id":"c1","token_endpoint_auth_method":"none"}`, oauth.InvalidClientMetadata,
			"token_endpoint_auth_method must be client_secret_basic, client_secret_post or private_key_jwt"},
		{"private_key_jwt without jwks", `{"client_id":"c1","token_endpoint_auth_method":"private_key_jwt"}`, oauth.InvalidClientMetadata,
			"private_key_jwt needs jwks"},
		{"jwks not a key set", `{"client_id":"c1","jwks":{"keys":[]}}`, oauth.InvalidClientMetadata,
			"jwks must be a JWK Set of public keys (EC, RSA >= 2048 bits, Ed25519)"},
		{"signing alg without jwks", `{"client_id":"c1","backchannel_authentication_request_signing_alg":"ES256"}`, oauth.InvalidClientMetadata,
			"backchannel_authentication_request_signing_alg must be an asymmetric alg and jwks must be registered"},
		{"symmetric signing alg", `{"client_id":"c1","backchannel_authentication_request_signing_alg":"HS256"}`, oauth.InvalidClientMetadata,
			"backchannel_authentication_request_signing_alg must be an asymmetric alg and jwks must be registered"},
		{"unsupported grant", `{"client_id":"c1","grant_types":["authorization_code"]}`, oauth.InvalidClientMetadata,
			"grant type authorization_code is not supported"},
		{"unknown delivery mode", `{"client_id":"c1","backchannel_token_delivery_mode":"email"}`, oauth.InvalidClientMetadata,
			"backchannel_token_delivery_mode must be poll, ping or push"},
		{"ping without endpoint", `{"client_id":"c1","backchannel_token_delivery_mode":"ping"}`, oauth.InvalidClientMetadata,
			"ping clients need backchannel_client_notification_endpoint"},
		{"push to plain http", `{"client_id":"c1","backchannel_token_delivery_mode":"push","backchannel_client_notification_endpoint":"http://example.com/cb"}`,
			oauth.InvalidClientMetadata, ""},
		{"push with DPoP", `{"client_id":"c1","backchannel_token_delivery_mode":"push","backchannel_client_notification_endpoint":"https://example.com/cb","dpop_bound_access_tokens":true}`,
			oauth.InvalidClientMetadata, "push-mode clients cannot present a DPoP proof for a pushed token: use poll or ping with dpop_bound_access_tokens"},
		{"unknown trust tier", `{"client_id":"c1","agent":{"trust_tier":"gold"}}`, oauth.InvalidClientMetadata,
			"agent.trust_tier must be first_party, standard or untrusted"},
		{"delegation too deep", `{"client_id":"c1","max_delegation_depth":17}`, oauth.InvalidClientMetadata, "max_delegation_depth must be 0 to 16"},
		{"negative delegation depth", `{"client_id":"c1","max_delegation_depth":-1}`, oauth.InvalidClientMetadata, "max_delegation_depth must be 0 to 16"},
		{"quote in scope", `{"client_id":"c1","scope":"openid pay\"ment"}`, oauth.InvalidClientMetadata, "scope has an invalid character"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := s.CreateClient(ctx, []byte(c.body))
			wantOAuth(t, err, c.code, c.desc)
		})
	}
	if _, err := s.Client(ctx, "c1"); err == nil {
		t.Error("a refused client was stored")
	}
	if _, err := s.CreateClient(ctx, []byte(`{"client_id":"c1"}`)); err != nil {
		t.Fatalf("a valid client: %v", err)
	}
	_, err := s.CreateClient(ctx, []byte(`{"client_id":"c1"}`))
	wantOAuth(t, err, oauth.Conflict, "client c1 exists")
}

// TestUserValidation: user registration refuses bad ids, emails, time
// zones and may_act entries with invalid_request, duplicates with conflict.
func TestUserValidation(t *testing.T) {
	s := newService(t)
	ctx := context.Background()
	cases := []struct{ name, body, code, desc string }{
		{"no id", `{}`, oauth.InvalidRequest, "id must be 1-128 characters of letters, digits and ._:- (no @)"},
		{"id is an email", `{"id":"a@example.com"}`, oauth.InvalidRequest, "id must be 1-128 characters of letters, digits and ._:- (no @)"},
		{"id reads as a flag", `{"id":"-u"}`, oauth.InvalidRequest, "id must be 1-128 characters of letters, digits and ._:- (no @)"},
		{"bad email", `{"id":"u1","email":"not an address"}`, oauth.InvalidRequest, "email is not an address"},
		{"display name in email", `{"id":"u1","email":"Al <al@example.com>"}`, oauth.InvalidRequest, "email is not an address"},
		{"bad time zone", `{"id":"u1","attributes":{"timezone":"Mars/Olympus"}}`, oauth.InvalidRequest, "attributes.timezone must be an IANA time zone"},
		{"time zone not a string", `{"id":"u1","attributes":{"timezone":5}}`, oauth.InvalidRequest, "attributes.timezone must be an IANA time zone"},
		{"may_act without client", `{"id":"u1","may_act":[{"max_amount":5}]}`, oauth.InvalidRequest, "may_act entries need client_id"},
		{"may_act negative amount", `{"id":"u1","may_act":[{"client_id":"a","max_amount":-1}]}`, oauth.InvalidRequest,
			"may_act max_amount must not be negative"},
		{"unknown member", `{"id":"u1","name":"Al"}`, oauth.InvalidRequest, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := s.CreateUser(ctx, []byte(c.body))
			wantOAuth(t, err, c.code, c.desc)
		})
	}
	if _, err := s.User(ctx, "u1"); err == nil {
		t.Error("a refused user was stored")
	}
	u, err := s.CreateUser(ctx, []byte(`{"id":"u1","email":" Al@Example.COM ","attributes":{"timezone":"Europe/Paris"}}`))
	if err != nil || u.Email != "al@example.com" {
		t.Fatalf("valid user: %+v %v", u, err)
	}
	_, err = s.CreateUser(ctx, []byte(`{"id":"u2","email":"al@example.com"}`))
	wantOAuth(t, err, oauth.Conflict, "a user with that id or email exists")
	_, err = s.PatchUser(ctx, "u1", []byte(`{"id":"u9"}`))
	wantOAuth(t, err, oauth.InvalidRequest, "id cannot change")
	_, err = s.PatchUser(ctx, "nobody", []byte(`{"email":"n@example.com"}`))
	wantOAuth(t, err, oauth.NotFound, "")
	_, err = s.CreateEnrollment(ctx, "nobody", "https://cs.example")
	wantOAuth(t, err, oauth.NotFound, "no user nobody")
}

// TestAuditFilter: /admin/audit's filter is checked before the store is
// read; an empty trail is an empty list.
func TestAuditFilter(t *testing.T) {
	s := newService(t)
	ctx := context.Background()
	cases := []struct {
		name string
		f    AuditFilter
		desc string
	}{
		{"since not RFC 3339", AuditFilter{Since: "yesterday"}, "since must be an RFC 3339 time"},
		{"limit not a number", AuditFilter{Limit: "ten"}, "limit must be 1 to 1000"},
		{"limit 0", AuditFilter{Limit: "0"}, "limit must be 1 to 1000"},
		{"limit over 1000", AuditFilter{Limit: "1001"}, "limit must be 1 to 1000"},
		{"cursor not ours", AuditFilter{Cursor: "!!"}, "cursor is not valid"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := s.AuditEntries(ctx, c.f)
			wantOAuth(t, err, oauth.InvalidRequest, c.desc)
		})
	}
	page, err := s.AuditEntries(ctx, AuditFilter{User: "nobody", Since: "2026-01-01T00:00:00Z", Limit: "1000"})
	if err != nil || page.Entries == nil || len(page.Entries) != 0 || page.NextCursor != "" {
		t.Errorf("empty trail: %+v %v", page, err)
	}
	// mandate= keeps the events of one intent mandate.
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.DB.Audit(ctx, "alice", store.Event{Type: "request.approved", User: "alice", MandateID: "m1"},
		store.Event{Type: "request.approved", User: "alice", MandateID: "m2"}, store.Event{Type: "request.approved", User: "alice"}))
	page, err = s.AuditEntries(ctx, AuditFilter{Mandate: "m1"})
	if err != nil || len(page.Entries) != 1 || page.Entries[0].MandateID != "m1" {
		t.Errorf("by mandate: %+v %v", page, err)
	}
}
