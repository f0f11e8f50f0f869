package ciba

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"time"

	"github.com/countersign/countersign/ciba/oauth"
	"github.com/countersign/countersign/ciba/rar"
	"github.com/countersign/countersign/ciba/store"
	"github.com/countersign/countersign/ciba/token"
	"github.com/countersign/countersign/risk"
	"github.com/countersign/countersign/rules"
)

// DefaultMandateMaxValidity bounds an intent mandate's valid_until when
// Config.MandateMaxValidity is not set: 7 days ahead.
const DefaultMandateMaxValidity = 7 * 24 * time.Hour

// MatchIntentMandate names, in a decision, why a request for a mandate
// went to the phone: only the user approves a mandate. It contains "_",
// which a rule id cannot.
const MatchIntentMandate = "intent_mandate"

// errSubAgentMandate refuses a mandate to a sub-agent: a mandate is the
// user's approval of an intent, which only the agent they approved asks for.
func errSubAgentMandate() error {
	return oauth.New(oauth.InvalidAuthorizationDetails, "a sub-agent may not create mandates")
}

// subAgentMandate refuses an intent_mandate entry from a client that holds
// the token-exchange grant but not CIBA's (a sub-agent).
func subAgentMandate(cl *store.Client, form url.Values) error {
	if !hasGrant(cl, oauth.GrantTokenExchange) {
		return nil
	}
	if ds, err := rar.Parse(form.Get("authorization_details")); err == nil && rar.IsMandate(ds) {
		return errSubAgentMandate()
	}
	return nil
}

// checkMandateRequest checks what rar cannot: the mandate's end is in the
// future and at most MandateMaxValidity ahead; a request for a mandate
// cannot also act within one.
func (s *Service) checkMandateRequest(details []rar.Detail, mandateID string) error {
	if !rar.IsMandate(details) {
		return nil
	}
	if mandateID != "" {
		return oauth.New(oauth.InvalidRequest, "mandate_id cannot be sent with an intent_mandate entry")
	}
	m, err := rar.ReadMandate(details[0])
	if err != nil {
		return err
	}
	now, limit := s.Now(), s.cfg.MandateMaxValidity
	if limit <= 0 {
		limit = DefaultMandateMaxValidity
	}
	if !m.ValidUntil.After(now) {
		return oauth.New(oauth.InvalidAuthorizationDetails, "authorization_details[0]: valid_until must be in the future")
	}
	if m.ValidUntil.Sub(now) > limit {
		return oauth.New(oauth.InvalidAuthorizationDetails, "authorization_details[0]: valid_until must be at most %s ahead", limit)
	}
	return nil
}

// mandateUse is a request's use of the mandate it names: the rules'
// mandate variable, and the charge when the mandate covers it.
type mandateUse struct {
	state  *store.MandateState
	input  rules.Mandate
	charge *store.MandateCharge // nil unless input.Covers
}

// validMandateID is the form of store.NewID.
func validMandateID(id string) bool {
	if len(id) != store.IDLen {
		return false
	}
	for _, c := range id {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// readMandate returns the mandate a request names for user: the one read
// in the lookup round trip when it was read for this user, otherwise read
// now. It is nil when there is none of this user.
func (s *Service) readMandate(ctx context.Context, lk store.Lookup, hint, id string, user *store.User) (*store.MandateState, error) {
	if id == "" {
		return nil, nil
	}
	if !validMandateID(id) {
		return nil, oauth.New(oauth.InvalidRequest, "mandate_id is not a mandate id")
	}
	if lk.MandateRead && hint == user.ID {
		return lk.Mandate, nil
	}
	m, err := s.db.MandateOf(ctx, user.ID, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	return m, err
}

// useMandate works out whether mandate m covers the request: the agent's
// and user's own, active, every entry covered by a template of its own,
// payments in the budget's currency, and the budget and uses left enough.
// Anything else leaves the request to the ordinary path.
func (s *Service) useMandate(m *store.MandateState, client, user string, details []rar.Detail) *mandateUse {
	u := &mandateUse{}
	if m == nil || m.ClientID != client || m.UserID != user {
		return u // another's mandate is no mandate: nothing of it is shown
	}
	u.state = m
	in := rules.Mandate{ID: m.ID, Intent: m.Intent, Currency: m.Currency, RemainingBudget: -1, RemainingUses: -1,
		EndsAt: m.ValidUntil}
	if m.BudgetCents >= 0 {
		in.RemainingBudget = float64(m.BudgetCents-m.SpentCents) / 100
	}
	if m.MaxUses > 0 {
		in.RemainingUses = m.MaxUses - m.Uses
	}
	tpls, err := templatesOf(m.Actions)
	if err == nil {
		for _, t := range tpls {
			in.Templates = append(in.Templates, map[string]any(t))
		}
	}
	cents, sameCurrency := rar.PaymentCents(details, m.Currency)
	in.Covers = err == nil && m.Status(s.Now()) == store.MandateActive && sameCurrency &&
		rar.Cover(details, tpls) &&
		(m.BudgetCents < 0 || m.SpentCents+cents <= m.BudgetCents) &&
		(m.MaxUses <= 0 || m.Uses+1 <= m.MaxUses)
	u.input = in
	if in.Covers {
		u.charge = &store.MandateCharge{ID: m.ID, AmountCents: cents, Uses: 1}
	}
	return u
}

// exchangeMandate is the rules' mandate variable at a token exchange from
// a token approved by a mandate: it covers the narrower entries when the
// mandate is still active and a template of its own covers each. Nothing
// is charged again: the subject token's request paid for them.
func (s *Service) exchangeMandate(ctx context.Context, sub *token.AccessClaims, details []rar.Detail) (rules.Mandate, error) {
	if sub.Approval.By != rules.PathMandate || sub.Approval.MandateID == "" {
		return rules.Mandate{}, nil
	}
	m, err := s.db.MandateOf(ctx, sub.Subject, sub.Approval.MandateID)
	if errors.Is(err, store.ErrNotFound) {
		return rules.Mandate{}, nil
	}
	if err != nil {
		return rules.Mandate{}, err
	}
	chain := sub.Act.Chain()
	if len(chain) == 0 {
		return rules.Mandate{}, nil
	}
	u := s.useMandate(m, chain[0], sub.Subject, details)
	_, sameCurrency := rar.PaymentCents(details, m.Currency)
	tpls, _ := templatesOf(m.Actions)
	u.input.Covers = u.state != nil && m.Status(s.Now()) != store.MandateRevoked && !s.Now().After(m.ValidUntil) &&
		sameCurrency && rar.Cover(details, tpls)
	return u.input, nil
}

// templatesOf decodes a mandate's templates as rar.Parse decodes entries
// (numbers as json.Number), so that coverage compares like with like.
func templatesOf(actions json.RawMessage) ([]rar.Detail, error) {
	dec := json.NewDecoder(bytes.NewReader(actions))
	dec.UseNumber()
	var out []rar.Detail
	err := dec.Decode(&out)
	return out, err
}

// mandateToPhone sends a request for a mandate to the phone whatever the
// score: only the user approves a mandate; a deny still refuses it.
func mandateToPhone(d *risk.Decision, details []rar.Detail) {
	if !rar.IsMandate(details) || d.Path == rules.PathDeny || d.Path == rules.PathDevice {
		return
	}
	d.Level, d.Path = rules.LevelHigh, rules.PathDevice
	d.Rules = append(d.Rules, rules.Match{ID: MatchIntentMandate,
		Reason: "The agent asks for a mandate to act for you within it: only you can approve it."})
}

// newMandate is the mandate that the approval of a mandate request
// creates, in the decision's own script.
func newMandate(r *store.Request, dev *store.Device, jti string, now time.Time) (*store.Mandate, error) {
	var ds []rar.Detail
	dec := json.NewDecoder(bytes.NewReader(r.AuthorizationDetails))
	dec.UseNumber()
	if err := dec.Decode(&ds); err != nil || len(ds) != 1 {
		return nil, errors.New("ciba: a mandate request without its one entry")
	}
	im, err := rar.ReadMandate(ds[0])
	if err != nil {
		return nil, err
	}
	entry, _ := json.Marshal(ds[0])
	actions, _ := json.Marshal(ds[0]["actions"])
	m := &store.Mandate{ID: store.NewID(), ClientID: r.ClientID, UserID: r.UserID, Intent: im.Intent, Actions: actions,
		Currency: im.Currency, BudgetCents: -1, MaxUses: im.MaxUses, ValidUntil: im.ValidUntil.UTC(), CreatedAt: now.UTC(),
		RequestID: r.ID, DeviceID: dev.ID, DecisionJTI: jti, Entry: entry, DeviceJWK: dev.PublicKey}
	if b, ok := ds[0]["budget"]; ok {
		m.Budget, _ = json.Marshal(b)
		m.BudgetCents = rar.FloorCents(im.Budget)
	}
	return m, nil
}

// withMandateID returns the authorization_details of an approved mandate
// request with the mandate's id in its entry: what its token carries.
func withMandateID(ad json.RawMessage, mandateID string) json.RawMessage {
	if mandateID == "" || len(ad) == 0 {
		return ad
	}
	var ds []map[string]json.RawMessage
	if err := json.Unmarshal(ad, &ds); err != nil || len(ds) != 1 {
		return ad
	}
	if t, _ := json.Marshal(rar.TypeIntentMandate); !bytes.Equal(ds[0]["type"], t) {
		return ad
	}
	ds[0]["mandate_id"], _ = json.Marshal(mandateID)
	out, err := json.Marshal(ds)
	if err != nil {
		return ad
	}
	return out
}

// approve makes an approval by the rules into one by the mandate: the
// approval names the mandate and the device and signed decision that
// created it, the events carry its id, and the request charges it.
func (u *mandateUse) approve(nr *store.NewRequest) {
	m := u.state
	nr.Approval.MandateID, nr.Approval.DeviceID, nr.Approval.DecisionJTI = m.ID, m.DeviceID, m.DecisionJTI
	for i := range nr.Events {
		nr.Events[i].MandateID = m.ID
	}
	nr.Mandate = u.charge
}

// resolveMandate reads the mandate the request names (mandate_id) and
// works out whether it covers the request.
func (s *Service) resolveMandate(ctx context.Context, r *authorizeRequest) error {
	m, err := s.readMandate(ctx, r.lookup, r.hint, r.p.mandateID, r.user)
	if err != nil {
		return err
	}
	r.mandate = s.useMandate(m, r.client.ID, r.user.ID, r.details)
	return nil
}

// mandateOfDecision creates, with the approval of a mandate request, its
// mandate: the signed decision over the mandate entry is the user's
// signed intent. The approval, its event and its grant name the mandate.
func (s *Service) mandateOfDecision(d *store.Decision, ev *store.Event, r *store.Request, dev *store.Device, jti string, now time.Time) error {
	var ds []rar.Detail
	if len(r.AuthorizationDetails) > 0 {
		if err := json.Unmarshal(r.AuthorizationDetails, &ds); err != nil {
			return err
		}
	}
	if !rar.IsMandate(ds) {
		return nil
	}
	m, err := newMandate(r, dev, jti, now)
	if err != nil {
		return err
	}
	d.Mandate = m
	d.Approval.MandateID, ev.MandateID = m.ID, m.ID
	d.Grant.AuthorizationDetails = withMandateID(d.Grant.AuthorizationDetails, m.ID)
	return nil
}
