package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/countersign/countersign/ciba/store"
)

// approveMandate stores a pending mandate request of user and approves it
// with a mandate of budget cents and max uses, as the device path does.
func approveMandate(t *testing.T, db *store.DB, user string, budget, uses int64, valid time.Duration) *store.Mandate {
	t.Helper()
	ctx := context.Background()
	r := newReq(db, "agent", user, 5*time.Minute)
	if err := db.CreateRequest(ctx, store.NewRequest{Request: r, State: store.Pending, Interval: 5}); err != nil {
		t.Fatal(err)
	}
	now := db.Now()
	m := &store.Mandate{ID: store.NewID(), ClientID: "agent", UserID: user, Intent: "Book my travel",
		Actions:     json.RawMessage(`[{"type":"agent_action","action":"read","resource":"calendar"}]`),
		BudgetCents: budget, MaxUses: uses, ValidUntil: now.Add(valid), CreatedAt: now, RequestID: r.ID, DeviceID: "dev"}
	if err := db.Decide(ctx, &r, store.Decision{Approve: true, Approval: &store.Approval{By: "device", At: now, MandateID: m.ID},
		Mandate: m, Events: []store.Event{{Type: "request.approved", RequestID: r.ID, MandateID: m.ID}}}); err != nil {
		t.Fatal(err)
	}
	return m
}

// charge stores an approved request of user under mandate m.
func charge(db *store.DB, user string, m *store.Mandate, cents int64) (store.Request, error) {
	r := newReq(db, "agent", user, 5*time.Minute)
	r.Path = "mandate"
	return r, db.CreateRequest(context.Background(), store.NewRequest{Request: r, State: store.Approved, Interval: 1,
		Approval: &store.Approval{By: "mandate", MandateID: m.ID, At: db.Now()},
		Mandate:  &store.MandateCharge{ID: m.ID, AmountCents: cents, Uses: 1},
		Events:   []store.Event{{Type: "risk.decision", RequestID: r.ID, MandateID: m.ID}}})
}

// The mandate cases of the conformance suite.
func init() {
	conformance = append(conformance,
		conformanceCase{"mandate: created by a decision, charged, revoked", []string{"Decide", "CreateRequest", "MandateOf",
			"MandateByID", "MandatesFor", "RevokeMandate", "Revoked", "AuditEntries"},
			func(t *testing.T, e env) { mandateCreateChargeRevoke(t, e.db) }},
		conformanceCase{"mandate: uses and expiry", []string{"CreateRequest"},
			func(t *testing.T, e env) { mandateUsesAndExpiry(t, e.db, e.clock) }},
		conformanceCase{"mandate: read in the lookup pipeline", []string{"LookupAuthorizeMandate"},
			func(t *testing.T, e env) { mandateLookup(t, e) }},
	)
}

func mandateCreateChargeRevoke(t *testing.T, db *store.DB) {
	ctx := context.Background()
	m := approveMandate(t, db, "alice", 10000, 3, time.Hour)
	r1, err := charge(db, "alice", m, 6000)
	if err != nil {
		t.Fatal(err)
	}
	// Over the budget: nothing is stored, the request does not exist.
	r2, err := charge(db, "alice", m, 4001)
	if !errors.Is(err, store.ErrMandateSpent) {
		t.Fatalf("over budget: %v", err)
	}
	if _, err := db.RequestFor(ctx, r2.ID, ""); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("refused charge stored its request: %v", err)
	}
	if _, err := charge(db, "alice", m, 4000); err != nil {
		t.Fatal(err)
	}
	got, err := db.MandateOf(ctx, "alice", m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.SpentCents != 10000 || got.Uses != 2 || len(got.Taken) != 2 || got.Taken[0].RequestID != r1.ID ||
		got.Status(db.Now()) != store.MandateExhausted {
		t.Fatalf("after two charges: %+v", got)
	}
	// Another user's id or agent finds nothing.
	if _, err := db.MandateOf(ctx, "bob", m.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("bob reads alice's mandate: %v", err)
	}
	if byID, err := db.MandateByID(ctx, m.ID); err != nil || byID.UserID != "alice" {
		t.Fatalf("by id: %v %+v", err, byID)
	}
	ref := store.TokenRef{User: "alice", JTI: "j", MandateID: m.ID, IssuedAt: db.Now()}
	if rev, _, err := db.Revoked(ctx, ref); err != nil || rev {
		t.Fatalf("active mandate's token revoked: %v %v", rev, err)
	}
	if err := db.RevokeMandate(ctx, "bob", m.ID, store.Event{Type: "mandate.revoked"}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("bob revokes alice's mandate: %v", err)
	}
	for range 2 { // idempotent
		if err := db.RevokeMandate(ctx, "alice", m.ID, store.Event{Type: "mandate.revoked"}); err != nil {
			t.Fatal(err)
		}
	}
	if rev, why, err := db.Revoked(ctx, ref); err != nil || !rev || why != "mandate revoked" {
		t.Fatalf("revoked mandate's token: %v %q %v", rev, why, err)
	}
	list, err := db.MandatesFor(ctx, []string{"alice"}, "agent")
	if err != nil || len(list) != 1 || list[0].Status(db.Now()) != store.MandateRevoked {
		t.Fatalf("list: %v %+v", err, list)
	}
	evs, _, err := db.AuditEntries(ctx, store.AuditQuery{Mandate: m.ID})
	if err != nil || len(evs) != 4 { // approval, two charges, one revocation
		t.Fatalf("audit by mandate: %v %d", err, len(evs))
	}
}

func mandateUsesAndExpiry(t *testing.T, db *store.DB, clock *fakeClock) {
	m := approveMandate(t, db, "carol", -1, 1, time.Hour)
	if _, err := charge(db, "carol", m, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := charge(db, "carol", m, 0); !errors.Is(err, store.ErrMandateSpent) {
		t.Fatalf("second use of a one-use mandate: %v", err)
	}
	m2 := approveMandate(t, db, "carol", -1, 0, time.Hour)
	clock.Advance(time.Hour)
	if _, err := charge(db, "carol", m2, 0); !errors.Is(err, store.ErrMandateSpent) {
		t.Fatalf("expired mandate charged: %v", err)
	}
}

func mandateLookup(t *testing.T, e env) {
	must(t, e.db.CreateClient(e.ctx, &store.Client{ID: "agent", Name: "Agent"}, store.Event{Type: "client.created"}))
	must(t, e.db.CreateUser(e.ctx, &store.User{ID: "dora", Email: "dora@example.com"}, store.Event{Type: "user.created"}))
	m := approveMandate(t, e.db, "dora", 500, 0, time.Hour)
	lk, err := e.db.LookupAuthorizeMandate(e.ctx, "agent", "dora", m.ID, nil, e.db.Now(), true)
	if err != nil || lk.Client == nil || lk.User == nil || !lk.MandateRead || lk.Mandate == nil || lk.Mandate.BudgetCents != 500 {
		t.Fatalf("lookup by id: %v %+v", err, lk)
	}
	// By email the user id is not known before the lookup: not read.
	lk, err = e.db.LookupAuthorizeMandate(e.ctx, "agent", "dora@example.com", m.ID, nil, e.db.Now(), true)
	if err != nil || lk.User == nil || lk.MandateRead {
		t.Fatalf("lookup by email: %v %+v", err, lk)
	}
	// Another user's id finds none of dora's mandates.
	lk, err = e.db.LookupAuthorizeMandate(e.ctx, "agent", "erin", m.ID, nil, e.db.Now(), true)
	if err != nil || lk.Mandate != nil {
		t.Fatalf("lookup for another: %v %+v", err, lk)
	}
}
