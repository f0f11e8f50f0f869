package ciba

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/countersign/countersign/ciba/oauth"
	"github.com/countersign/countersign/ciba/store"
)

// TestDecideRules is one row per rule of a device decision (docs/api.md
// "Decision JWT"): each row signs a decision for a fresh pending request,
// changed as the row says; a refused decision leaves it pending.
func TestDecideRules(t *testing.T) {
	h := newHarness(t)
	other := h.mustAuthorize(hPayment)
	reused := store.NewID()
	for _, c := range []struct {
		name   string
		mod    func(jwt.MapClaims)
		code   string
		status int
	}{
		{"approve", func(jwt.MapClaims) {}, "", 0},
		{"deny", func(c jwt.MapClaims) { c["decision"] = "deny" }, "", 0},
		{"iss is the device", func(c jwt.MapClaims) { c["iss"] = "dev-2" }, oauth.InvalidRequest, 400},
		{"aud is the issuer", func(c jwt.MapClaims) { c["aud"] = "https://other.example" }, oauth.InvalidRequest, 400},
		{"exp required", func(c jwt.MapClaims) { delete(c, "exp") }, oauth.InvalidRequest, 400},
		{"expired", func(c jwt.MapClaims) { c["exp"] = hStart.Add(-time.Minute).Unix() }, oauth.InvalidRequest, 400},
		{"iat required", func(c jwt.MapClaims) { delete(c, "iat") }, oauth.InvalidRequest, 400},
		{"exp at most 5 minutes after iat", func(c jwt.MapClaims) { c["exp"] = hStart.Add(6 * time.Minute).Unix() }, oauth.InvalidRequest, 400},
		{"req names this request", func(c jwt.MapClaims) { c["req"] = other }, oauth.InvalidRequest, 400},
		{"decision is approve or deny", func(c jwt.MapClaims) { c["decision"] = "maybe" }, oauth.InvalidRequest, 400},
		{"bm_hash of the binding message", func(c jwt.MapClaims) { c["bm_hash"] = BMHash("Pay EVIL") }, oauth.InvalidRequest, 400},
		{"ad_hash of the authorization_details", func(c jwt.MapClaims) { c["ad_hash"] = "AAAA" }, oauth.InvalidRequest, 400},
		{"jti required", func(c jwt.MapClaims) { delete(c, "jti") }, oauth.InvalidRequest, 400},
		{"jti first use", func(c jwt.MapClaims) { c["jti"] = reused }, "", 0},
		{"jti replayed", func(c jwt.MapClaims) { c["jti"] = reused }, oauth.InvalidRequest, 400},
	} {
		t.Run(c.name, func(t *testing.T) {
			id := h.mustAuthorize(hPayment)
			rs, err := h.db.RequestFor(t.Context(), id, "alice")
			h.must(err)
			claims := h.decision(&rs.Request, "approve")
			c.mod(claims)
			err = h.s.Decide(t.Context(), h.dev, id, h.sign(claims))
			wantErr(t, err, c.code, c.status)
			rs, err = h.db.RequestFor(t.Context(), id, "alice")
			h.must(err)
			if pending := rs.State == store.Pending; pending != (c.code != "") {
				t.Fatalf("state %s after the decision", rs.State)
			}
		})
	}
	t.Run("not the device user's request", func(t *testing.T) {
		err := h.s.Decide(t.Context(), h.dev, "nope", "a.b.c")
		wantErr(t, err, oauth.NotFound, 404)
	})
	t.Run("first decision wins", func(t *testing.T) {
		id := h.mustAuthorize(hPayment)
		rs, err := h.db.RequestFor(t.Context(), id, "alice")
		h.must(err)
		h.must(h.s.Decide(t.Context(), h.dev, id, h.sign(h.decision(&rs.Request, "deny"))))
		err = h.s.Decide(t.Context(), h.dev, id, h.sign(h.decision(&rs.Request, "approve")))
		wantErr(t, err, oauth.Conflict, 409)
	})
}

// TestStoredRiskReadOnce: the phone's view and the approval (so the
// token's approval claim) read the same rules from the stored risk.
func TestStoredRiskReadOnce(t *testing.T) {
	h := newHarness(t)
	id := h.mustAuthorize(hPayment)
	rs, err := h.db.RequestFor(t.Context(), id, "alice")
	h.must(err)
	v := h.s.view(t.Context(), rs)
	if v.Risk.Level == "" || len(v.Risk.Reasons) == 0 || len(v.Risk.RequiredBy) == 0 {
		t.Fatalf("risk view %+v", v.Risk)
	}
	h.must(h.s.Decide(t.Context(), h.dev, id, h.sign(h.decision(&rs.Request, "approve"))))
	resp, err := h.token("agent", map[string][]string{"grant_type": {oauth.GrantCIBA}, "auth_req_id": {id}})
	h.must(err)
	claims, err := h.s.tokens.Verify(resp.AccessToken)
	h.must(err)
	if len(claims.Approval.Rules) != len(v.Risk.Reasons) {
		t.Fatalf("approval rules %v, view reasons %v", claims.Approval.Rules, v.Risk.Reasons)
	}
	for i, r := range v.Risk.Reasons {
		if claims.Approval.Rules[i] != r.Rule {
			t.Fatalf("approval rules %v, view reasons %v", claims.Approval.Rules, v.Risk.Reasons)
		}
	}
	if got := decodeRisk(nil); got.ruleIDs() != nil || got.view().Reasons == nil {
		t.Fatalf("an absent risk reads as %+v", got)
	}
}
