package ciba

import (
	"encoding/json"

	"github.com/countersign/countersign/ciba/store"
)

// outboxFor returns the notification an approved request owes its agent:
// a ping (CIBA Core §10.2) or the token response itself (§10.3.1).
func (s *Service) outboxFor(r *store.Request, ap *store.Approval) (*store.Outbox, error) {
	switch r.DeliveryMode {
	case ModePing:
		b, _ := json.Marshal(map[string]string{"auth_req_id": r.ID})
		return &store.Outbox{RequestID: r.ID, Kind: ModePing, Body: b}, nil
	case ModePush:
		// A push-mode token is minted once, here, and kept in the outbox
		// entry until delivered or expired: every retry sends the same one.
		resp, _, err := s.mint(r, ap, r.ID, "")
		if err != nil {
			return nil, err
		}
		resp.AuthReqID = r.ID
		b, err := json.Marshal(resp)
		if err != nil {
			return nil, err
		}
		return &store.Outbox{RequestID: r.ID, Kind: ModePush, Body: b}, nil
	}
	return nil, nil
}

// outboxDenied is the notification a denied request owes a ping or push
// agent (CIBA Core §10.2, §12).
func (s *Service) outboxDenied(r *store.Request) *store.Outbox {
	switch r.DeliveryMode {
	case ModePing:
		b, _ := json.Marshal(map[string]string{"auth_req_id": r.ID})
		return &store.Outbox{RequestID: r.ID, Kind: ModePing, Body: b}
	case ModePush:
		b, _ := json.Marshal(map[string]string{"auth_req_id": r.ID, "error": "access_denied", "error_description": "the user denied the request"})
		return &store.Outbox{RequestID: r.ID, Kind: ModePush, Body: b}
	}
	return nil
}
