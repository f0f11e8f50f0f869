package admin

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/countersign/countersign/ciba/oauth"
	"github.com/countersign/countersign/ciba/store"
)

// AuditFilter is /admin/audit's query as sent: strings, checked by
// AuditEntries.
type AuditFilter struct {
	User, Agent, Request, Type, Cursor string
	Mandate                            string // an intent mandate's id: its creation, use and revocation
	Since                              string // RFC 3339
	Limit                              string // 1 to 1000
}

// AuditPage is one page of the audit trail, oldest first.
type AuditPage struct {
	Entries    []store.Event `json:"entries"`
	NextCursor string        `json:"next_cursor,omitempty"`
}

// query checks the filter and turns it into a store query.
func (f AuditFilter) query() (store.AuditQuery, error) {
	q := store.AuditQuery{User: f.User, Agent: f.Agent, Request: f.Request, Type: f.Type, Cursor: f.Cursor, Mandate: f.Mandate}
	if f.Since != "" {
		t, err := time.Parse(time.RFC3339, f.Since)
		if err != nil {
			return q, oauth.New(oauth.InvalidRequest, "since must be an RFC 3339 time")
		}
		q.Since = t
	}
	if f.Limit != "" {
		n, err := strconv.Atoi(f.Limit)
		if err != nil || n < 1 || n > 1000 {
			return q, oauth.New(oauth.InvalidRequest, "limit must be 1 to 1000")
		}
		q.Limit = n
	}
	return q, nil
}

// AuditEntries reads one page of the audit trail matching f.
func (s *Service) AuditEntries(ctx context.Context, f AuditFilter) (*AuditPage, error) {
	q, err := f.query()
	if err != nil {
		return nil, err
	}
	entries, next, err := s.DB.AuditEntries(ctx, q)
	if errors.Is(err, store.ErrBadCursor) {
		return nil, oauth.New(oauth.InvalidRequest, "cursor is not valid")
	}
	if err != nil {
		return nil, err
	}
	if entries == nil {
		entries = []store.Event{} // an empty page is [], not null
	}
	return &AuditPage{Entries: entries, NextCursor: next}, nil
}

// VerifyAudit checks the audit trail's hash chains.
func (s *Service) VerifyAudit(ctx context.Context) (store.AuditReport, error) {
	return s.DB.VerifyAudit(ctx)
}
