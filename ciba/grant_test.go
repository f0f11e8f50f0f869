package ciba

import (
	"testing"

	"github.com/countersign/countersign/ciba/oauth"
	"github.com/countersign/countersign/ciba/store"
)

// TestPollErrorIsTotal: every poll outcome has its CIBA Core §11 answer,
// and one the mapping does not know is a server_error, never an approval.
func TestPollErrorIsTotal(t *testing.T) {
	want := map[store.PollStatus]string{
		store.PollUnknown: oauth.InvalidGrant, store.PollWrongClient: oauth.InvalidGrant, store.PollRedeemed: oauth.InvalidGrant,
		store.PollExpired: oauth.ExpiredToken, store.PollSlowDown: oauth.SlowDown, store.PollPending: oauth.AuthorizationPending,
		store.PollDenied: oauth.AccessDenied, "frozen": oauth.ServerError, "": oauth.ServerError,
	}
	for st, code := range want {
		e := pollError(st)
		if e == nil || e.Code != code {
			t.Fatalf("%q: %+v, want %s", st, e, code)
		}
		if wantStatus := map[bool]int{true: 500, false: 400}[code == oauth.ServerError]; e.Status != wantStatus {
			t.Fatalf("%q: status %d, want %d", st, e.Status, wantStatus)
		}
	}
	if e := pollError(store.PollApproved); e != nil {
		t.Fatalf("approved: %+v", e)
	}
}
