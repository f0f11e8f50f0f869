package ciba

import (
	"encoding/json"

	"github.com/countersign/countersign/ciba/store"
)

// outboxFor returns the notification an approved request owes its agent:
// a ping (CIBA Core §10.2) or the token response itself (§10.3.1).
// For push mode it also returns the token-issued audit event.
func (s *Service) outboxFor(r *store.Request, ap *store.Approval) (*store.Outbox, *store.Event, error) {
	switch DeliveryMode(r.DeliveryMode) {
	case ModePing:
		b, _ := json.Marshal(map[string]string{"auth_req_id": r.ID})
		return &store.Outbox{RequestID: r.ID, Kind: string(ModePing), Body: b}, nil, nil
	case ModePush:
		// A push-mode token is minted once, here, and kept in the outbox
		// entry until delivered or expired: every retry sends the same one.
		resp, jti, err := s.mint(r, ap, r.ID, "")
		if err != nil {
			return nil, nil, err
		}
		resp.AuthReqID = r.ID
		b, err := json.Marshal(resp)
		if err != nil {
			return nil, nil, err
		}
		ev := &store.Event{At: s.Now(), Type: "token.issued", RequestID: r.ID, GrantID: ap.GrantID, User: r.UserID,
			Agent: r.ClientID, Actors: []string{r.ClientID}, Path: ap.By, DeviceID: ap.DeviceID, TokenJTI: jti,
			Detail: "pushed to the client notification endpoint"}
		return &store.Outbox{RequestID: r.ID, Kind: string(ModePush), Body: b}, ev, nil
	}
	return nil, nil, nil
}

// outboxDenied is the notification a denied request owes a ping or push
// agent (CIBA Core §10.2, §12).
func (s *Service) outboxDenied(r *store.Request) *store.Outbox {
	switch DeliveryMode(r.DeliveryMode) {
	case ModePing:
		b, _ := json.Marshal(map[string]string{"auth_req_id": r.ID})
		return &store.Outbox{RequestID: r.ID, Kind: string(ModePing), Body: b}
	case ModePush:
		b, _ := json.Marshal(map[string]string{"auth_req_id": r.ID, "error": "access_denied", "error_description": "the user denied the request"})
		return &store.Outbox{RequestID: r.ID, Kind: string(ModePush), Body: b}
	}
	return nil
}
