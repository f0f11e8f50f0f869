package admin

import (
	"context"
	"errors"
	"net/mail"
	"sort"
	"strings"
	"time"

	"github.com/countersign/countersign/ciba/oauth"
	"github.com/countersign/countersign/ciba/store"
)

type userFields struct {
	ID         *string         `json:"id"`
	Email      *string         `json:"email"`
	Attributes *map[string]any `json:"attributes"`
	MayAct     *[]store.MayAct `json:"may_act"`
}

// CreateUser registers a user.
func (s *Service) CreateUser(ctx context.Context, body []byte) (*store.User, error) {
	var f userFields
	if err := DecodeStrict(body, &f); err != nil {
		return nil, err
	}
	u := &store.User{CreatedAt: s.Now().UTC()}
	if f.ID != nil {
		u.ID = *f.ID
	}
	if !validUserID(u.ID) {
		return nil, oauth.New(oauth.InvalidRequest, "id must be 1-128 characters of letters, digits and ._:- (no @)")
	}
	if err := applyUser(u, &f); err != nil {
		return nil, err
	}
	if err := s.DB.CreateUser(ctx, u, s.userEvent("user.created", u)); err != nil {
		if errors.Is(err, store.ErrExists) {
			return nil, oauth.New(oauth.Conflict, "a user with that id or email exists")
		}
		return nil, err
	}
	return u, nil
}

func applyUser(u *store.User, f *userFields) error {
	if f.Email != nil {
		e := strings.ToLower(strings.TrimSpace(*f.Email))
		if e != "" {
			if a, err := mail.ParseAddress(e); err != nil || a.Address != e {
				return oauth.New(oauth.InvalidRequest, "email is not an address")
			}
		}
		u.Email = e
	}
	if f.Attributes != nil {
		u.Attributes = *f.Attributes
	}
	if tz, ok := u.Attributes["timezone"]; ok {
		s, _ := tz.(string)
		if _, err := time.LoadLocation(s); err != nil || s == "" {
			return oauth.New(oauth.InvalidRequest, "attributes.timezone must be an IANA time zone")
		}
	}
	if f.MayAct != nil {
		for _, m := range *f.MayAct {
			if m.ClientID == "" {
				return oauth.New(oauth.InvalidRequest, "may_act entries need client_id")
			}
			if m.MaxAmount != nil && *m.MaxAmount < 0 {
				return oauth.New(oauth.InvalidRequest, "may_act max_amount must not be negative")
			}
		}
		u.MayAct = *f.MayAct
	}
	return nil
}

// User returns one user.
func (s *Service) User(ctx context.Context, id string) (*store.User, error) {
	u, err := s.DB.User(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, oauth.New(oauth.NotFound, "no user %q", id)
	}
	return u, err
}

// Users lists every user.
func (s *Service) Users(ctx context.Context) ([]*store.User, error) { return s.DB.Users(ctx) }

// PatchUser changes the fields present in body.
func (s *Service) PatchUser(ctx context.Context, id string, body []byte) (*store.User, error) {
	old, err := s.User(ctx, id)
	if err != nil {
		return nil, err
	}
	var f userFields
	if err := DecodeStrict(body, &f); err != nil {
		return nil, err
	}
	if f.ID != nil && *f.ID != id {
		return nil, oauth.New(oauth.InvalidRequest, "id cannot change")
	}
	u := *old
	if err := applyUser(&u, &f); err != nil {
		return nil, err
	}
	if err := s.DB.PutUser(ctx, old, &u, s.userEvent("user.updated", &u)); err != nil {
		if errors.Is(err, store.ErrExists) {
			return nil, oauth.New(oauth.Conflict, "a user with that email exists")
		}
		return nil, err
	}
	return &u, nil
}

// DeleteUser removes a user.
func (s *Service) DeleteUser(ctx context.Context, id string) error {
	u, err := s.User(ctx, id)
	if err != nil {
		return err
	}
	return s.DB.DeleteUser(ctx, u, store.Event{At: s.Now(), Type: "user.deleted", User: u.ID})
}

// userEvent records what rules will read of a user (attribute names, the
// agents allowed by may_act), not the values of every attribute.
func (s *Service) userEvent(typ string, u *store.User) store.Event {
	names := make([]string, 0, len(u.Attributes))
	for k := range u.Attributes {
		names = append(names, k)
	}
	sort.Strings(names)
	agents := make([]string, 0, len(u.MayAct))
	for _, m := range u.MayAct {
		agents = append(agents, m.ClientID)
	}
	return store.Event{At: s.Now(), Type: typ, User: u.ID,
		Detail: "attributes: " + strings.Join(names, " ") + "; may_act: " + strings.Join(agents, " ")}
}
