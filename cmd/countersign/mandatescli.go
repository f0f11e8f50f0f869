package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gowebpki/jcs"
)

const mandatesUsage = `Mandate commands (against a running server; --server, --admin-token):
  countersign mandates list [--user U] [--agent A] [--output table|json]
  countersign mandates show ID [--output table|json]
                                     the signed intent, its device signature verified here
                                     (offline), and every action taken under it from the audit trail
  countersign mandates revoke ID     later requests take the ordinary path; its tokens stop at once
`

// mandateView is the admin API's mandate (GET /admin/mandates/{id}).
type mandateView struct {
	ID         string            `json:"mandate_id"`
	ClientID   string            `json:"client_id"`
	ClientName string            `json:"client_name"`
	UserID     string            `json:"user_id"`
	Intent     string            `json:"intent"`
	Actions    json.RawMessage   `json:"actions"`
	Budget     *mandateBudget    `json:"budget"`
	MaxUses    int               `json:"max_uses"`
	ValidUntil time.Time         `json:"valid_until"`
	CreatedAt  time.Time         `json:"created_at"`
	Spent      string            `json:"spent"`
	Uses       int               `json:"uses"`
	Status     string            `json:"status"`
	DeviceID   string            `json:"device_id"`
	RequestID  string            `json:"request_id"`
	Taken      []json.RawMessage `json:"taken"`
}

type mandateBudget struct {
	Currency string      `json:"currency"`
	Amount   json.Number `json:"amount"`
}

// auditEvent is what `mandates show` reads of an audit event.
type auditEvent struct {
	At          time.Time       `json:"at"`
	Type        string          `json:"type"`
	RequestID   string          `json:"request_id"`
	Agent       string          `json:"agent"`
	Action      json.RawMessage `json:"action"`
	Path        string          `json:"path"`
	DeviceID    string          `json:"device_id"`
	DecisionJWT string          `json:"decision_jwt"`
	MandateID   string          `json:"mandate_id"`
}

// mandatesCmd runs `countersign mandates ...` and returns the exit status.
func mandatesCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	verb, fs, code, done := verbFlags("mandates", args, mandatesUsage, stdout, stderr)
	if done {
		return code
	}
	var cf cliFlags
	var user, agent string
	switch verb {
	case "list":
		cf.register(fs, getenv)
		fs.StringVar(&user, "user", "", "only this user's mandates")
		fs.StringVar(&agent, "agent", "", "only this agent's (client_id) mandates")
	case "show":
		cf.register(fs, getenv)
	case "revoke":
		cf.registerServer(fs, getenv)
	default:
		fmt.Fprintf(stderr, "countersign mandates: unknown command %q\n\n%s", verb, mandatesUsage)
		return 2
	}
	pos, err := parseInterleaved(fs, args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	want := 1
	if verb == "list" {
		want = 0
	}
	if len(pos) != want || (cf.output != "" && cf.output != "table" && cf.output != "json") {
		fmt.Fprintf(stderr, "countersign mandates %s: bad arguments\n\n%s", verb, mandatesUsage)
		return 2
	}
	c := cf.connect(stderr, "countersign mandates", 30*time.Second)
	if c == nil {
		return 2
	}
	out := &output{w: stdout, json: cf.output == "json"}
	switch verb {
	case "list":
		err = mandatesList(ctx, c, user, agent, out)
	case "show":
		err = mandateShow(ctx, c, pos[0], out)
	case "revoke":
		_, err = c.call(ctx, "POST", "/admin/mandates/"+url.PathEscape(pos[0])+"/revoke", map[string]any{})
		if err == nil {
			fmt.Fprintf(stdout, "revoked mandate %s: requests under it now take the ordinary path, and its tokens are inactive\n", pos[0])
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "countersign mandates %s: %v\n", verb, err)
		return 1
	}
	return 0
}

func mandatesList(ctx context.Context, c *adminClient, user, agent string, out *output) error {
	q := url.Values{}
	if user != "" {
		q.Set("user", user)
	}
	if agent != "" {
		q.Set("agent", agent)
	}
	path := "/admin/mandates"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	b, err := c.call(ctx, "GET", path, nil)
	if err != nil {
		return err
	}
	return out.table(b, "mandates", []string{"MANDATE_ID", "USER", "AGENT", "STATUS", "SPENT", "BUDGET", "USES", "MAX_USES", "VALID_UNTIL", "INTENT"},
		[]string{"mandate_id", "user_id", "client_id", "status", "spent", "budget.amount", "uses", "max_uses", "valid_until", "intent"})
}

// intentCheck is the offline verification of a mandate's signed intent.
type intentCheck struct {
	Verified    bool      `json:"verified"`
	Problem     string    `json:"problem,omitempty"`
	DeviceID    string    `json:"device_id"`
	DecisionJTI string    `json:"decision_jti,omitempty"`
	SignedAt    time.Time `json:"signed_at,omitzero"`
	ADHash      string    `json:"ad_hash,omitempty"`
}

var errNotVerified = errors.New("the signed intent does not verify")

func mandateShow(ctx context.Context, c *adminClient, id string, out *output) error {
	raw, err := c.call(ctx, "GET", "/admin/mandates/"+url.PathEscape(id), nil)
	if err != nil {
		return err
	}
	var m mandateView
	if err := json.Unmarshal(raw, &m); err != nil {
		return fmt.Errorf("decoding the mandate: %w", err)
	}
	check, err := signedIntent(ctx, c, &m)
	if err != nil {
		return err
	}
	actions, err := mandateEvents(ctx, c, &m)
	if err != nil {
		return err
	}
	if out.json {
		b, err := json.Marshal(map[string]any{"mandate": json.RawMessage(raw), "signature": check, "actions": actions})
		if err != nil {
			return err
		}
		if err := out.object(b, nil); err != nil {
			return err
		}
	} else {
		printMandate(out.w, &m, check, actions)
	}
	if !check.Verified {
		return errNotVerified
	}
	return nil
}

// signedIntent fetches the approval of the mandate's request from the
// audit trail and the device's enrolled public key, then verifies here,
// without trusting the server's word, that the device signed exactly
// this mandate.
func signedIntent(ctx context.Context, c *adminClient, m *mandateView) (intentCheck, error) {
	var approved *auditEvent
	_, err := pages(ctx, c, url.Values{"request": {m.RequestID}, "type": {"request.approved"}}, func(raw json.RawMessage) (bool, error) {
		var e auditEvent
		if json.Unmarshal(raw, &e) == nil && e.Type == "request.approved" && e.RequestID == m.RequestID && e.DecisionJWT != "" {
			approved = &e
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		return intentCheck{}, fmt.Errorf("reading the approval from the audit trail: %w", err)
	}
	if approved == nil {
		return intentCheck{DeviceID: m.DeviceID, Problem: "the audit trail has no device approval of request " + m.RequestID}, nil
	}
	key, err := storedDeviceKey(ctx, c, m.ID)
	if err != nil {
		return intentCheck{}, err
	}
	if len(key) == 0 {
		if key, err = deviceKeyOf(ctx, c, m.UserID, m.DeviceID); err != nil {
			return intentCheck{}, err
		}
	}
	if len(key) == 0 {
		return intentCheck{DeviceID: m.DeviceID, Problem: "device " + m.DeviceID + " is no longer enrolled: its public key is gone"}, nil
	}
	return verifyIntent(m, approved, key), nil
}

// storedDeviceKey returns the copy of the signing device's public key the
// server kept with the mandate (nil when it kept none): it outlives the
// device's removal.
func storedDeviceKey(ctx context.Context, c *adminClient, id string) (json.RawMessage, error) {
	b, err := c.call(ctx, "GET", "/admin/mandates/"+url.PathEscape(id)+"/record", nil)
	if err != nil {
		return nil, fmt.Errorf("reading the mandate record: %w", err)
	}
	var rec struct {
		DeviceJWK json.RawMessage `json:"device_jwk"`
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("decoding the mandate record: %w", err)
	}
	return rec.DeviceJWK, nil
}

// deviceKeyOf returns the public JWK of the user's enrolled device id
// (nil when the device was removed).
func deviceKeyOf(ctx context.Context, c *adminClient, user, id string) (json.RawMessage, error) {
	b, err := c.call(ctx, "GET", "/admin/users/"+url.PathEscape(user)+"/devices", nil)
	if err != nil {
		return nil, fmt.Errorf("reading the device's public key: %w", err)
	}
	var resp struct {
		Devices []struct {
			ID        string          `json:"id"`
			PublicKey json.RawMessage `json:"public_key"`
		} `json:"devices"`
	}
	if err := json.Unmarshal(b, &resp); err != nil {
		return nil, fmt.Errorf("decoding the devices: %w", err)
	}
	for _, d := range resp.Devices {
		if d.ID == id {
			return d.PublicKey, nil
		}
	}
	return nil, nil
}

// verifyIntent checks the decision JWT of the approval: an ES256
// signature by the device key, issued by the mandate's device for its
// request, an approval, and an ad_hash over authorization_details whose
// one entry is this mandate.
func verifyIntent(m *mandateView, ev *auditEvent, jwkJSON json.RawMessage) intentCheck {
	ck := intentCheck{DeviceID: m.DeviceID}
	fail := func(format string, args ...any) intentCheck { ck.Problem = fmt.Sprintf(format, args...); return ck }
	pub, err := deviceJWK(jwkJSON)
	if err != nil {
		return fail("%v", err)
	}
	var claims struct {
		jwt.RegisteredClaims
		Req      string `json:"req"`
		Decision string `json:"decision"`
		ADHash   string `json:"ad_hash"`
	}
	// The signature is checked, not the times: the decision was valid when
	// made, and this checks it long after it expired.
	_, err = jwt.ParseWithClaims(ev.DecisionJWT, &claims, func(*jwt.Token) (any, error) { return pub, nil },
		jwt.WithValidMethods([]string{"ES256"}), jwt.WithoutClaimsValidation())
	if err != nil {
		return fail("the device signature does not verify: %v", err)
	}
	ck.DecisionJTI, ck.ADHash = claims.ID, claims.ADHash
	if claims.IssuedAt != nil {
		ck.SignedAt = claims.IssuedAt.UTC()
	}
	switch {
	case claims.Issuer != m.DeviceID:
		return fail("signed by device %q, not the mandate's device %q", claims.Issuer, m.DeviceID)
	case claims.Req != m.RequestID:
		return fail("signed for request %q, not the mandate's request %q", claims.Req, m.RequestID)
	case claims.Decision != "approve":
		return fail("the signed decision is %q, not approve", claims.Decision)
	}
	canon, err := jcs.Transform(ev.Action)
	if err != nil {
		return fail("the approved authorization_details are not JSON")
	}
	sum := sha256.Sum256(canon) // the device's ad_hash: RFC 8785 JSON, SHA-256, base64url
	if base64.RawURLEncoding.EncodeToString(sum[:]) != claims.ADHash {
		return fail("ad_hash does not match the approved authorization_details")
	}
	if why := sameMandate(ev.Action, m); why != "" {
		return fail("the signed entry differs from the mandate: %s", why)
	}
	ck.Verified = true
	return ck
}

// deviceJWK parses an enrolled device's public key: a P-256 EC JWK
// without private material.
func deviceJWK(raw json.RawMessage) (*ecdsa.PublicKey, error) {
	var k struct {
		Kty, Crv, X, Y, D string
	}
	if err := json.Unmarshal(raw, &k); err != nil || k.Kty != "EC" || k.Crv != "P-256" || k.D != "" {
		return nil, errors.New("the device key is not a public P-256 JWK")
	}
	x, err1 := base64.RawURLEncoding.DecodeString(k.X)
	y, err2 := base64.RawURLEncoding.DecodeString(k.Y)
	if err1 != nil || err2 != nil || len(x) != 32 || len(y) != 32 {
		return nil, errors.New("the device key has bad coordinates")
	}
	// ParseUncompressedPublicKey checks that the point is on the curve.
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
	if err != nil {
		return nil, errors.New("the device key is not on P-256")
	}
	return pub, nil
}

// sameMandate compares the one signed intent_mandate entry with the
// mandate as the server holds it; "" when they agree.
func sameMandate(signed json.RawMessage, m *mandateView) string {
	var ds []map[string]json.RawMessage
	if err := json.Unmarshal(signed, &ds); err != nil || len(ds) != 1 {
		return "not one entry"
	}
	d := ds[0]
	var typ, intent, until string
	_ = json.Unmarshal(d["type"], &typ)
	_ = json.Unmarshal(d["intent"], &intent)
	_ = json.Unmarshal(d["valid_until"], &until)
	t, err := time.Parse(time.RFC3339, until)
	switch {
	case typ != "intent_mandate":
		return "type " + typ
	case intent != m.Intent:
		return "intent"
	case err != nil || !t.Equal(m.ValidUntil):
		return "valid_until"
	case !sameJSON(d["actions"], m.Actions):
		return "actions"
	case !sameNumber(d["max_uses"], json.Number(fmt.Sprint(m.MaxUses))):
		return "max_uses"
	}
	var b map[string]json.RawMessage
	if len(d["budget"]) > 0 && json.Unmarshal(d["budget"], &b) != nil {
		return "budget"
	}
	if (b == nil) != (m.Budget == nil) {
		return "budget"
	}
	if b != nil {
		var cur string
		_ = json.Unmarshal(b["currency"], &cur)
		if cur != m.Budget.Currency || !sameNumber(b["amount"], m.Budget.Amount) {
			return "budget"
		}
	}
	return ""
}

// sameNumber compares amounts exactly (2000, 2000.00 and "2000" agree);
// an absent signed number equals 0.
func sameNumber(signed json.RawMessage, held json.Number) bool {
	s := strings.Trim(string(signed), `"`)
	if s == "" || s == "null" {
		s = "0"
	}
	a, ok1 := new(big.Rat).SetString(s)
	b, ok2 := new(big.Rat).SetString(string(held))
	return ok1 && ok2 && a.Cmp(b) == 0
}

func sameJSON(a, b json.RawMessage) bool {
	ca, err1 := jcs.Transform(a)
	cb, err2 := jcs.Transform(b)
	return err1 == nil && err2 == nil && bytes.Equal(ca, cb)
}

// mandateEvents reads, oldest first, every audit event under the mandate.
func mandateEvents(ctx context.Context, c *adminClient, m *mandateView) ([]auditEvent, error) {
	var evs []auditEvent
	q := url.Values{"mandate": {m.ID}, "user": {m.UserID}, "agent": {m.ClientID}}
	_, err := pages(ctx, c, q, func(raw json.RawMessage) (bool, error) {
		var e auditEvent
		// Filtered here too: the events of the mandate are those naming it.
		if json.Unmarshal(raw, &e) == nil && e.MandateID == m.ID {
			evs = append(evs, e)
		}
		return true, nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading the audit trail: %w", err)
	}
	return evs, nil
}

func printMandate(w io.Writer, m *mandateView, ck intentCheck, evs []auditEvent) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	agent := m.ClientID
	if m.ClientName != "" {
		agent += " (" + m.ClientName + ")"
	}
	budget := "none"
	if m.Budget != nil {
		budget = fmt.Sprintf("%s %s, spent %s", m.Budget.Amount, m.Budget.Currency, m.Spent)
	}
	uses := fmt.Sprint(m.Uses)
	if m.MaxUses > 0 {
		uses += fmt.Sprintf(" of %d", m.MaxUses)
	}
	for _, kv := range [][2]string{{"mandate", m.ID}, {"status", m.Status}, {"intent", m.Intent}, {"user", m.UserID},
		{"agent", agent}, {"budget", budget}, {"uses", uses}, {"valid until", m.ValidUntil.UTC().Format(time.RFC3339)},
		{"created", m.CreatedAt.UTC().Format(time.RFC3339)}, {"approved request", m.RequestID}} {
		fmt.Fprintf(tw, "%s:\t%s\n", kv[0], kv[1])
	}
	tw.Flush()
	fmt.Fprintln(w, "actions allowed:")
	var acts []json.RawMessage
	_ = json.Unmarshal(m.Actions, &acts)
	for _, a := range acts {
		fmt.Fprintf(w, "  %s\n", a)
	}
	if ck.Verified {
		fmt.Fprintf(w, "signed intent: VERIFIED: ES256 signature of device %s (decision %s, signed %s); ad_hash %s covers this mandate\n",
			ck.DeviceID, ck.DecisionJTI, ck.SignedAt.Format(time.RFC3339), ck.ADHash)
	} else {
		fmt.Fprintf(w, "signed intent: NOT VERIFIED: %s\n", ck.Problem)
	}
	fmt.Fprintf(w, "audit events under the mandate (%d):\n", len(evs))
	for _, e := range evs {
		fmt.Fprintf(w, "  %s  %-18s request=%s path=%s %s\n", e.At.UTC().Format(time.RFC3339), e.Type, e.RequestID, orDash(e.Path), e.Action)
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
