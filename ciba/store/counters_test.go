package store_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/countersign/countersign/ciba/store"
	"github.com/countersign/countersign/ciba/store/redistest"
)

var errInjected = errors.New("injected: script not run")

// wire sits at the Redis boundary: it records every command the store
// sends and, while failing is set, refuses scripts (as a Redis that
// errors on them would) while letting every other command through.
type wire struct {
	mu      sync.Mutex
	sent    []string
	failing bool
}

func (w *wire) refuse(c redis.Cmder) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sent = append(w.sent, c.Name())
	return w.failing && (c.Name() == "evalsha" || c.Name() == "eval")
}

func (w *wire) last() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.sent[len(w.sent)-1]
}

func (w *wire) DialHook(next redis.DialHook) redis.DialHook { return next }

func (w *wire) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, c redis.Cmder) error {
		if w.refuse(c) {
			c.SetErr(errInjected)
			return errInjected
		}
		return next(ctx, c)
	}
}

func (w *wire) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		var pass []redis.Cmder
		refused := false
		for _, c := range cmds {
			if w.refuse(c) {
				c.SetErr(errInjected)
				refused = true
				continue
			}
			pass = append(pass, c)
		}
		if len(pass) > 0 {
			if err := next(ctx, pass); err != nil {
				return err
			}
		}
		if refused {
			return errInjected
		}
		return nil
	}
}

var allSignals = []string{store.SigAgentRequests1h, store.SigAgentUserRequests1h, store.SigUserPending,
	store.SigAgentUserDenials24h, store.SigUserSpend24h, store.SigAgentUserSpend24h, store.SigFirstTime}

// TestCountersMoveOnlyWithTheStore: a create that is refused or fails
// moves no counter, and a device approval moves every counter in its one
// script, with no Redis command after it that could fail the answer.
func TestCountersMoveOnlyWithTheStore(t *testing.T) {
	s := redistest.Real(t)
	w := &wire{}
	rdb := redis.NewClient(&redis.Options{Addr: s.Addr})
	rdb.AddHook(w)
	t.Cleanup(func() { rdb.Close() })
	db := store.Open(rdb, s.Prefix)
	now := time.Date(2026, 1, 15, 12, 0, 0, 0, time.UTC)
	db.Now = func() time.Time { return now }
	ctx := context.Background()
	signals := func() store.Signals {
		t.Helper()
		sig, err := db.ReadSignals(ctx, "agent", "alice", allSignals, now)
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}
	untouched := store.Signals{FirstTime: true}

	// An approved create whose script fails stores nothing and counts nothing.
	r := newReq(db, "agent", "alice", 5*time.Minute)
	r.Path, r.Amount = "policy", 40
	w.failing = true
	err := db.CreateRequest(ctx, store.NewRequest{Request: r, State: store.Approved, Approval: &store.Approval{By: "policy", At: now},
		Events: []store.Event{{Type: "request.approved", RequestID: r.ID}}})
	w.failing = false
	if err == nil {
		t.Fatal("create with a failing script succeeded")
	}
	if got := signals(); got != untouched {
		t.Fatalf("failed create moved counters: %+v", got)
	}
	if _, err := db.RequestFor(ctx, r.ID, ""); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("failed create stored the request: %v", err)
	}

	// A push-bombing refusal counts nothing either.
	limits := store.Limits{PendingPerUser: 1}
	first := newReq(db, "agent", "alice", 5*time.Minute)
	first.Amount = 25
	if err := db.CreateRequest(ctx, store.NewRequest{Request: first, State: store.Pending, Interval: 5, Limits: limits}); err != nil {
		t.Fatal(err)
	}
	pending := store.Signals{FirstTime: true, UserPending: 1}
	var le *store.LimitError
	second := newReq(db, "agent", "alice", 5*time.Minute)
	if err := db.CreateRequest(ctx, store.NewRequest{Request: second, State: store.Pending, Interval: 5, Limits: limits}); !errors.As(err, &le) {
		t.Fatalf("over the cap: %v", err)
	}
	if got := signals(); got != pending {
		t.Fatalf("refused create moved counters: %+v", got)
	}

	// The approval commits the decision and every counter in one script:
	// it is the last command the store sends, and the counters read right
	// after it show the approval.
	if err := db.Decide(ctx, &first, store.Decision{Approve: true, Approval: &store.Approval{By: "device", At: now}}); err != nil {
		t.Fatal(err)
	}
	if last := w.last(); !slices.Contains([]string{"evalsha", "eval"}, last) {
		t.Fatalf("the store sent %q after the decision script", last)
	}
	want := store.Signals{AgentRequests1h: 1, AgentUserRequests1h: 1, UserSpend24h: 25, AgentUserSpend24h: 25}
	if got := signals(); got != want {
		t.Fatalf("after approval: %+v, want %+v", got, want)
	}
}
