package admin

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
)

// TestResourceServerGrants: a resource server may have no grant at all,
// and gets none by default; any other client must have one and gets the
// CIBA grant by default.
func TestResourceServerGrants(t *testing.T) {
	s := newService(t)
	cases := []struct {
		body, wantGrants, wantErr string
	}{
		{`{"client_id":"rs-empty","resource_server":true,"grant_types":[]}`, `[]`, ""},
		{`{"client_id":"rs-default","resource_server":true}`, `[]`, ""},
		{`{"client_id":"rs-ciba","resource_server":true,"grant_types":["urn:openid:params:grant-type:ciba"]}`, `["urn:openid:params:grant-type:ciba"]`, ""},
		{`{"client_id":"pep-default","policy_enforcement_point":true}`, `[]`, ""},
		{`{"client_id":"pep-ciba","policy_enforcement_point":true,"grant_types":["urn:openid:params:grant-type:ciba"]}`, `["urn:openid:params:grant-type:ciba"]`, ""},
		{`{"client_id":"agent-default"}`, `["urn:openid:params:grant-type:ciba"]`, ""},
		{`{"client_id":"agent-rs-false","resource_server":false}`, `["urn:openid:params:grant-type:ciba"]`, ""},
		{`{"client_id":"agent-empty","grant_types":[]}`, ``, "invalid_client_metadata: grant_types must not be empty (only a resource server or a policy enforcement point may have none)"},
	}
	for _, c := range cases {
		v, err := s.CreateClient(context.Background(), []byte(c.body))
		if c.wantErr != "" {
			if err == nil || err.Error() != c.wantErr {
				t.Errorf("%s: err %v, want %s", c.body, err, c.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", c.body, err)
		}
		for _, got := range []*ClientView{v, mustGet(t, s, v.ClientID)} {
			if b, _ := json.Marshal(got.GrantTypes); string(b) != c.wantGrants {
				t.Errorf("%s: grant_types %s, want %s", c.body, b, c.wantGrants)
			}
		}
	}
	// Turning a grant-less resource server into an ordinary client needs grants.
	_, err := s.PatchClient(context.Background(), "rs-empty", []byte(`{"resource_server":false}`))
	if err == nil || !strings.Contains(err.Error(), "grant_types must not be empty") {
		t.Errorf("patch resource_server false without grants: %v", err)
	}
}

func mustGet(t *testing.T, s *Service, id string) *ClientView {
	t.Helper()
	v, err := s.Client(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
