package ciba_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/countersign/countersign/ciba"
	"github.com/countersign/countersign/ciba/admin"
	"github.com/countersign/countersign/ciba/clientauth"
	"github.com/countersign/countersign/ciba/oauth"
	"github.com/countersign/countersign/ciba/store"
	"github.com/countersign/countersign/ciba/store/redistest"
	"github.com/countersign/countersign/ciba/token"
	"github.com/countersign/countersign/risk"
	"github.com/countersign/countersign/rules"
)

const issuer = "https://as.example"

// authorizer is a Service over the test's own keys in real Redis, with
// the default ruleset, one registered client and the user alice.
type authorizer struct {
	svc   *ciba.Service
	admin *admin.Service
	creds clientauth.Credentials
}

func newAuthorizer(t *testing.T, cfg ciba.Config, client string) *authorizer {
	t.Helper()
	rs := redistest.Real(t)
	db := store.Open(rs.Client, rs.Prefix)
	db.Now = func() time.Time { return daytime }
	ctx := context.Background()
	keys, err := ciba.LoadKeys(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Issuer = issuer
	minter := &token.Minter{Issuer: issuer, Keys: keys.Get, Now: time.Now}
	// A fixed daytime clock: the default rules score payments at night.
	a := &authorizer{svc: ciba.New(cfg, db, risk.NewEngine(ciba.SignalReader{DB: db}, rules.Default()), minter,
		ciba.WithClock(func() time.Time { return daytime })),
		admin: &admin.Service{DB: db, Now: time.Now}}
	v, err := a.admin.CreateClient(ctx, []byte(client))
	if err != nil {
		t.Fatal(err)
	}
	a.creds = clientauth.Credentials{ClientID: v.ClientID, Method: clientauth.SecretBasic, Secret: clientauth.Secret(v.ClientSecret)}
	if _, err := a.admin.CreateUser(ctx, []byte(`{"id":"alice","email":"alice@example.com","attributes":{"spending_limit":1000,"timezone":"UTC"}}`)); err != nil {
		t.Fatal(err)
	}
	return a
}

func (a *authorizer) authorize(form url.Values) (*ciba.AuthorizeResponse, error) {
	form.Set("scope", "openid")
	form.Set("login_hint", "alice@example.com")
	return a.svc.BackchannelAuthorize(context.Background(), ciba.AuthorizeInput{Credentials: a.creds, Form: form,
		Endpoint: issuer + "/bc-authorize", IP: "192.0.2.1"})
}

const (
	readDetails = `[{"type":"agent_action","action":"read","resource":"calendar"}]`
	bigPayment  = `[{"type":"payment_initiation","action":"transfer","amount":25000,"currency":"EUR","creditor":{"name":"ACME"}}]`
)

// TestAuthorizeInterval: interval is never 0 (openid-client refuses it):
// 1 s once policy decided, the configured interval (default 5 s) while the
// phone decides; expires_in is a positive integer.
func TestAuthorizeInterval(t *testing.T) {
	for _, c := range []struct {
		name     string
		cfg      ciba.Config
		details  string
		interval int
	}{
		{"policy", ciba.Config{}, readDetails, 1},
		{"device, default", ciba.Config{}, bigPayment, 5},
		{"device, configured", ciba.Config{PollInterval: 7}, bigPayment, 7},
	} {
		a := newAuthorizer(t, c.cfg, `{"client_id":"agent-1"}`)
		r, err := a.authorize(url.Values{"authorization_details": {c.details}, "requested_expiry": {"120"}})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		b, _ := json.Marshal(r)
		want := fmt.Sprintf(`{"auth_req_id":%q,"expires_in":120,"interval":%d}`, r.AuthReqID, c.interval)
		if string(b) != want || len(r.AuthReqID) != 24 {
			t.Errorf("%s: %s, want %s", c.name, b, want)
		}
	}
}

// TestAuthorizeRefusesHiddenCharacters: binding_message and every string
// of authorization_details refuse bidi controls and invisible characters
// (cmd/countersign checks the same inside a signed request object).
func TestAuthorizeRefusesHiddenCharacters(t *testing.T) {
	a := newAuthorizer(t, ciba.Config{}, `{"client_id":"agent-1"}`)
	for _, c := range []struct {
		name, param, value, code, desc string
	}{
		{"bm override", "binding_message", "Pay \u202eRUE 00052 EMCA", oauth.InvalidBindingMessage, "binding_message must not contain U+202E, a bidirectional control"},
		{"bm isolate", "binding_message", "Pay \u2066ACME\u2069", oauth.InvalidBindingMessage, "U+2066"},
		{"bm zero width", "binding_message", "AC\u200bME", oauth.InvalidBindingMessage, "U+200B, an invisible character"},
		{"bm BOM", "binding_message", "\ufeffACME", oauth.InvalidBindingMessage, "U+FEFF"},
		{"bm ALM", "binding_message", "ACME\u061c", oauth.InvalidBindingMessage, "U+061C"},
		{"bm RLM", "binding_message", "ACME\u200f", oauth.InvalidBindingMessage, "U+200F"},
		{"bm tag", "binding_message", "ACME\U000E0041", oauth.InvalidBindingMessage, "U+E0041, a tag character"},
		{"bm newline", "binding_message", "ACME\nEvil", oauth.InvalidBindingMessage, "U+000A, a control character"},
		{"creditor", "authorization_details", `[{"type":"payment_initiation","amount":10,"currency":"EUR","creditor":{"name":"Pay \u202eRUE"}}]`,
			oauth.InvalidAuthorizationDetails, "authorization_details[0].creditor.name contains U+202E"},
		{"resource", "authorization_details", `[{"type":"agent_action","action":"read","resource":"cal\u2060endar"}]`,
			oauth.InvalidAuthorizationDetails, "authorization_details[0].resource contains U+2060"},
	} {
		_, err := a.authorize(url.Values{c.param: {c.value}})
		var oe *oauth.Error
		if !errors.As(err, &oe) || oe.Code != c.code || oe.Status != 400 || !strings.Contains(oe.Description, c.desc) {
			t.Errorf("%s: %v, want 400 %s %q", c.name, err, c.code, c.desc)
		}
	}
	// Joiners are kept: scripts and emoji need them.
	r, err := a.authorize(url.Values{"binding_message": {"👩\u200d💻 می\u200cخواهم"}, "authorization_details": {readDetails}})
	if err != nil || r.AuthReqID == "" {
		t.Fatalf("joiners refused: %v", err)
	}
}

// TestDeviceViewSaysWhatRequiredThePhone: the phone shows "required by
// rule <id>" rather than a score under the threshold, so the device view
// names the rules that required the device, or the agent's acr_values.
func TestDeviceViewSaysWhatRequiredThePhone(t *testing.T) {
	a := newAuthorizer(t, ciba.Config{}, `{"client_id":"agent-1"}`)
	if _, err := a.authorize(url.Values{"authorization_details": {bigPayment}}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.authorize(url.Values{"authorization_details": {readDetails}, "acr_values": {"urn:countersign:acr:device"}}); err != nil {
		t.Fatal(err)
	}
	views, err := a.svc.DeviceRequests(context.Background(), &store.Device{ID: "d1", UserID: "alice"})
	if err != nil || len(views) != 2 {
		t.Fatalf("views: %v %v", views, err)
	}
	got := map[string]string{}
	for _, v := range views {
		b, _ := json.Marshal(v.Risk.RequiredBy)
		got[v.Risk.Level+" "+fmt.Sprint(v.Risk.Score)] += string(b)
	}
	want := map[string]string{"high 0": `["acr_values"]`, "high 60": `["payment-over-limit","daily-spend-over-limit"]`}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("required_by: %v, want %v", got, want)
	}
}

// daytime is the authorizer's clock: 09:00 UTC, outside the default rules'
// night hours, whatever the hour the tests run.
var daytime = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
