package ciba

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/countersign/countersign/ciba/oauth"
	"github.com/countersign/countersign/ciba/store"
)

// MandateView is a mandate as the phone and the admin API show it
// (docs/api.md). Every member is always present; budget, max_uses and
// revoked_at are null when they do not apply.
type MandateView struct {
	MandateID  string          `json:"mandate_id"`
	ClientID   string          `json:"client_id"`
	ClientName string          `json:"client_name"`
	UserID     string          `json:"user_id"`
	Intent     string          `json:"intent"`
	Actions    json.RawMessage `json:"actions"`
	Budget     json.RawMessage `json:"budget"`
	MaxUses    *int64          `json:"max_uses"`
	ValidUntil string          `json:"valid_until"`
	CreatedAt  string          `json:"created_at"`
	Spent      string          `json:"spent"`
	Uses       int64           `json:"uses"`
	Status     string          `json:"status"` // active | expired | revoked | exhausted
	RevokedAt  *string         `json:"revoked_at"`
	DeviceID   string          `json:"device_id"`
	RequestID  string          `json:"request_id"`
	Taken      []TakenView     `json:"taken"`
}

// TakenView is one request approved under a mandate.
type TakenView struct {
	RequestID            string          `json:"request_id"`
	At                   string          `json:"at"`
	AuthorizationDetails json.RawMessage `json:"authorization_details"`
	Amount               string          `json:"amount"`
}

// Cents prints an amount in cents as a decimal string with two places.
func Cents(c int64) string {
	sign := ""
	if c < 0 {
		sign, c = "-", -c
	}
	frac := strconv.FormatInt(c%100, 10)
	if len(frac) < 2 {
		frac = "0" + frac
	}
	return sign + strconv.FormatInt(c/100, 10) + "." + frac
}

func (s *Service) mandateView(ctx context.Context, m *store.MandateState) MandateView {
	v := MandateView{MandateID: m.ID, ClientID: m.ClientID, UserID: m.UserID, Intent: m.Intent, Actions: m.Actions,
		ValidUntil: m.ValidUntil.UTC().Format(time.RFC3339), CreatedAt: m.CreatedAt.UTC().Format(time.RFC3339),
		Spent: Cents(m.SpentCents), Uses: m.Uses, Status: m.Status(s.Now()), DeviceID: m.DeviceID,
		RequestID: m.RequestID, Taken: make([]TakenView, 0, len(m.Taken)), Budget: json.RawMessage("null")}
	if len(m.Budget) > 0 {
		v.Budget = m.Budget
	}
	if m.MaxUses > 0 {
		n := m.MaxUses
		v.MaxUses = &n
	}
	if m.RevokedAt != nil {
		at := m.RevokedAt.UTC().Format(time.RFC3339)
		v.RevokedAt = &at
	}
	for _, t := range m.Taken {
		ad := t.AuthorizationDetails
		if len(ad) == 0 {
			ad = json.RawMessage("[]")
		}
		v.Taken = append(v.Taken, TakenView{RequestID: t.RequestID, At: t.At.UTC().Format(time.RFC3339),
			AuthorizationDetails: ad, Amount: Cents(t.AmountCents)})
	}
	if cl, err := s.client(ctx, m.ClientID); err == nil {
		v.ClientName = cl.Name
	}
	return v
}

// ListMandates lists mandates, newest first: of one user and/or one agent
// when set, every one otherwise (the admin API). A device lists its own
// user's with ListMandates(ctx, dev.UserID, "").
func (s *Service) ListMandates(ctx context.Context, user, agent string) ([]MandateView, error) {
	var users []string
	if user != "" {
		users = []string{user}
	}
	list, err := s.db.MandatesFor(ctx, users, agent)
	if err != nil {
		return nil, err
	}
	out := make([]MandateView, 0, len(list))
	for _, m := range list {
		out = append(out, s.mandateView(ctx, m))
	}
	return out, nil
}

// DeviceMandates lists the device user's mandates, newest first.
func (s *Service) DeviceMandates(ctx context.Context, dev *store.Device) ([]MandateView, error) {
	return s.ListMandates(ctx, dev.UserID, "")
}

// Mandate returns one mandate by id (the admin API): 404 not_found when
// there is none.
func (s *Service) Mandate(ctx context.Context, id string) (*MandateView, error) {
	m, err := s.db.MandateByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, oauth.New(oauth.NotFound, "no such mandate")
	}
	if err != nil {
		return nil, err
	}
	v := s.mandateView(ctx, m)
	return &v, nil
}

// RevokeMandate revokes a mandate: by a device (only its own user's: any
// other is 404 not_found, as an unknown one is), or by the admin when by
// is nil. Later requests under it take the ordinary path at once and every
// token issued under it is inactive at introspection. Revoking a revoked
// mandate succeeds and changes nothing.
func (s *Service) RevokeMandate(ctx context.Context, id string, by *store.Device) (err error) {
	ev := store.Event{At: s.Now(), Type: "mandate.revoked", Detail: "revoked by the admin"}
	user := ""
	if by != nil {
		defer func() { err = s.refused(ctx, deviceRefusal(ctx, by), err) }()
		user, ev.DeviceID, ev.Detail = by.UserID, by.ID, "revoked by the user from a device"
	} else {
		m, err := s.db.MandateByID(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return oauth.New(oauth.NotFound, "no such mandate")
		}
		if err != nil {
			return err
		}
		user, ev.Agent = m.UserID, m.ClientID
	}
	ev.User = user
	err = s.db.RevokeMandate(ctx, user, id, ev)
	if errors.Is(err, store.ErrNotFound) {
		return oauth.New(oauth.NotFound, "no such mandate")
	}
	return err
}

// MandateRecord returns a mandate as stored (the admin's view of its
// signed intent): the intent_mandate entry exactly as the device signed
// it, and the public key of that device, so that the signature can be
// checked offline even after the device is removed. 404 not_found when
// there is none.
func (s *Service) MandateRecord(ctx context.Context, id string) (*store.MandateState, error) {
	m, err := s.db.MandateByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, oauth.New(oauth.NotFound, "no such mandate")
	}
	return m, err
}
