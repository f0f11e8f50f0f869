package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/countersign/countersign/ciba/store"
	"github.com/countersign/countersign/ciba/store/redistest"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// backends runs a test on real Redis and on miniredis: one suite, never
// skipped.
func backends(t *testing.T, f func(t *testing.T, db *store.DB, clock *fakeClock)) {
	for name, open := range map[string]func(testing.TB) *redistest.Server{"redis": redistest.Real, "miniredis": redistest.Mini} {
		t.Run(name, func(t *testing.T) {
			s := open(t)
			db := store.Open(s.Client, s.Prefix)
			clock := &fakeClock{t: time.Date(2026, 1, 15, 12, 0, 0, 0, time.UTC)}
			db.Now = clock.Now
			f(t, db, clock)
		})
	}
}

type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time          { return c.t }
func (c *fakeClock) Advance(d time.Duration) { c.t = c.t.Add(d) }

func newReq(db *store.DB, client, user string, exp time.Duration) store.Request {
	now := db.Now()
	return store.Request{ID: store.NewShardedID(store.ShardOf(user)), ClientID: client, UserID: user, Scope: "openid",
		Path: "device", CreatedAt: now, ExpiresAt: now.Add(exp)}
}

func TestRequestLifecycle(t *testing.T) {
	backends(t, func(t *testing.T, db *store.DB, clock *fakeClock) {
		ctx := context.Background()
		r := newReq(db, "agent", "alice", 5*time.Minute)
		if err := db.CreateRequest(ctx, store.NewRequest{Request: r, State: store.Pending, Interval: 5,
			Events: []store.Event{{Type: "risk.decision", RequestID: r.ID}}}); err != nil {
			t.Fatal(err)
		}
		poll := func(client string) store.PollOutcome {
			t.Helper()
			o, err := db.Poll(ctx, r.ID, client)
			if err != nil {
				t.Fatal(err)
			}
			return o
		}
		if o := poll("agent"); o.Status != store.PollPending {
			t.Fatalf("first poll: %q", o.Status)
		}
		if o := poll("other"); o.Status != store.PollWrongClient {
			t.Fatalf("other client: %q", o.Status)
		}
		clock.Advance(time.Second)
		if o := poll("agent"); o.Status != store.PollSlowDown || o.Interval != 10 {
			t.Fatalf("fast poll: %+v", o)
		}
		clock.Advance(9 * time.Second)
		if o := poll("agent"); o.Status != store.PollSlowDown || o.Interval != 15 {
			t.Fatalf("poll within the grown interval: %+v", o)
		}
		clock.Advance(15 * time.Second)
		if o := poll("agent"); o.Status != store.PollPending {
			t.Fatalf("poll after interval: %+v", o)
		}
		clock.Advance(5 * time.Minute)
		if o := poll("agent"); o.Status != store.PollExpired {
			t.Fatalf("after expiry: %+v", o)
		}
		if o, _ := db.Poll(ctx, "zz"+store.NewID(), "agent"); o.Status != store.PollUnknown {
			t.Fatalf("unknown id: %+v", o)
		}
	})
}

func TestPolicyApprovedRedeemedOnce(t *testing.T) {
	backends(t, func(t *testing.T, db *store.DB, clock *fakeClock) {
		ctx := context.Background()
		r := newReq(db, "agent", "bob", time.Minute)
		r.Amount = 50
		ap := &store.Approval{By: "policy", Rules: []string{"small"}, GrantID: "g1", At: db.Now()}
		if err := db.CreateRequest(ctx, store.NewRequest{Request: r, State: store.Approved, Approval: ap}); err != nil {
			t.Fatal(err)
		}
		o, err := db.Poll(ctx, r.ID, "agent")
		if err != nil || o.Status != store.PollApproved || o.Approval.GrantID != "g1" || o.Request.UserID != "bob" {
			t.Fatalf("poll: %+v %v", o, err)
		}
		if err := db.Redeem(ctx, o.Request, []store.Event{{Type: "token.issued", RequestID: r.ID, TokenJTI: "j"}}); err != nil {
			t.Fatal(err)
		}
		if err := db.Redeem(ctx, o.Request, nil); !errors.Is(err, store.ErrNotRedeemable) {
			t.Fatalf("second redeem: %v", err)
		}
		o, _ = db.Poll(ctx, r.ID, "agent")
		if o.Status != store.PollRedeemed {
			t.Fatalf("poll after redeem: %+v", o)
		}
		s, err := db.ReadSignals(ctx, "agent", "bob", []string{store.SigFirstTime, store.SigAgentUserSpend24h,
			store.SigUserSpend24h, store.SigAgentRequests1h, store.SigAgentUserRequests1h}, db.Now())
		if err != nil {
			t.Fatal(err)
		}
		want := store.Signals{AgentRequests1h: 1, AgentUserRequests1h: 1, UserSpend24h: 50, AgentUserSpend24h: 50}
		if s != want {
			t.Fatalf("signals %+v, want %+v", s, want)
		}
		// Read only what was asked.
		s, _ = db.ReadSignals(ctx, "agent", "carol", []string{store.SigFirstTime}, db.Now())
		if !s.FirstTime || s.UserSpend24h != 0 {
			t.Fatalf("carol: %+v", s)
		}
	})
}

func TestPendingLimits(t *testing.T) {
	backends(t, func(t *testing.T, db *store.DB, clock *fakeClock) {
		ctx := context.Background()
		lim := store.Limits{PendingPerUser: 2, PendingPerAgentUser: 1, PushesPerMinute: 5}
		create := func(client string) error {
			return db.CreateRequest(ctx, store.NewRequest{Request: newReq(db, client, "dave", time.Minute), State: store.Pending, Interval: 5, Limits: lim})
		}
		if err := create("a1"); err != nil {
			t.Fatal(err)
		}
		var le *store.LimitError
		if err := create("a1"); !errors.As(err, &le) || le.Which != "agent_user_pending" || le.RetryAfter != time.Minute {
			t.Fatalf("second for a1: %v", err)
		}
		if err := create("a2"); err != nil {
			t.Fatal(err)
		}
		if err := create("a3"); !errors.As(err, &le) || le.Which != "user_pending" {
			t.Fatalf("third pending: %v", err)
		}
		s, _ := db.ReadSignals(ctx, "a1", "dave", []string{store.SigUserPending}, db.Now())
		if s.UserPending != 2 {
			t.Fatalf("user_pending %d", s.UserPending)
		}
		clock.Advance(61 * time.Second)
		if err := create("a3"); err != nil {
			t.Fatalf("after expiry: %v", err)
		}
	})
}
