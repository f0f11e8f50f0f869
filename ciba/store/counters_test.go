package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
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

// counterKey is a counter key of user's shard, as doc.go lists them.
func counterKey(db *store.DB, user, rest string) string {
	return fmt.Sprintf("%s{s%02d}:c:%s", db.Prefix(), store.ShardOf(user), rest)
}

// TestCountersAreOneHashPerPair: whatever a flow does for an agent and a
// user, their counters are one hash, the user's one hash (and the push
// counter of the minute), the agent's one hash in the user's shard; each
// hash lives as long as its longest-lived field, and a denial never
// shortens the approvals ever.
func TestCountersAreOneHashPerPair(t *testing.T) {
	backends(t, func(t *testing.T, db *store.DB, clock *fakeClock) {
		e := env{ctx: context.Background(), db: db, clock: clock}
		rdb := db.Redis()
		r := e.pending(t, "agent", "olga", time.Minute, nil)
		r.Amount = 12.5
		must(t, e.approve(t, r, nil))
		p := newReq(db, "agent", "olga", time.Minute)
		p.Amount = 7
		must(t, db.CreateRequest(e.ctx, store.NewRequest{Request: p, State: store.Approved, Approval: &store.Approval{By: "policy"}}))
		must(t, e.deny(t, e.pending(t, "agent", "olga", time.Minute, nil)))
		must(t, db.CreateRequest(e.ctx, store.NewRequest{Request: newReq(db, "agent", "olga", time.Minute), State: store.Denied}))

		now := db.Now()
		b5, bh := now.Unix()/300, now.Unix()/3600
		au := counterKey(db, "olga", "au:agent:olga")
		want := map[string]string{
			au:                                "hash",
			counterKey(db, "olga", "u:olga"):  "hash",
			counterKey(db, "olga", "a:agent"): "hash",
			counterKey(db, "olga", fmt.Sprintf("p:olga:%d", now.Unix()/60)): "string",
		}
		got := map[string]string{}
		iter := rdb.Scan(e.ctx, 0, db.Prefix()+"*", 100).Iterator()
		for iter.Next(e.ctx) {
			if k := iter.Val(); strings.Contains(k, "}:c:") {
				got[k] = rdb.Type(e.ctx, k).Val()
			}
		}
		must(t, iter.Err())
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("counter keys %v, want %v", got, want)
		}
		fields := rdb.HGetAll(e.ctx, au).Val()
		wantFields := map[string]string{fmt.Sprintf("r:%d", b5): "2", "approved": "2",
			fmt.Sprintf("s:%d", bh): "19.5", fmt.Sprintf("d:%d", bh): "2"}
		if fmt.Sprint(fields) != fmt.Sprint(wantFields) {
			t.Fatalf("agent-user hash %v, want %v", fields, wantFields)
		}
		ttl := func(key string) time.Duration { return rdb.TTL(e.ctx, key).Val() }
		for key, want := range map[string]time.Duration{au: 400 * 24 * time.Hour,
			counterKey(db, "olga", "u:olga"): 25 * time.Hour, counterKey(db, "olga", "a:agent"): 65 * time.Minute} {
			if got := ttl(key); got > want || got < want-time.Minute {
				t.Errorf("TTL of %s: %v, want %v", key, got, want)
			}
		}
		// A pair with only denials is kept for the day window.
		must(t, db.CreateRequest(e.ctx, store.NewRequest{Request: newReq(db, "other", "olga", time.Minute), State: store.Denied}))
		if got := ttl(counterKey(db, "olga", "au:other:olga")); got > 25*time.Hour || got < 25*time.Hour-time.Minute {
			t.Errorf("TTL of a denials-only pair: %v", got)
		}
	})
}

// TestCounterHashesDropStaleFields runs an agent and a user through 60
// hours of an approval (with an amount) and a denial every 20 minutes:
// every field past the windows is dropped once a hash holds more than 48
// fields, including from a hash whose live fields are more than 48 (the
// agent-user hash keeps 4 r, 25 d and 25 s fields), and the signals are
// those of every request in their windows at each step.
func TestCounterHashesDropStaleFields(t *testing.T) {
	backends(t, func(t *testing.T, db *store.DB, clock *fakeClock) {
		ctx := context.Background()
		rdb := db.Redis()
		keys := map[string]string{"agent-user": counterKey(db, "ula", "au:agent:ula"),
			"user": counterKey(db, "ula", "u:ula"), "agent": counterKey(db, "ula", "a:agent")}
		// The model: the time of every approval and denial so far.
		var approvals, denials []time.Time
		in := func(ts []time.Time, bucket func(time.Time) int64, keep int64) (n int64, fields map[string]bool) {
			fields = map[string]bool{}
			now := bucket(clock.Now())
			for _, at := range ts {
				if b := bucket(at); b > now-keep {
					n++
					fields[fmt.Sprint(b)] = true
				}
			}
			return n, fields
		}
		b5 := func(t time.Time) int64 { return t.Unix() / 300 }
		bh := func(t time.Time) int64 { return t.Unix() / 3600 }
		crowded, lingered := false, 0
		for step := 0; step < 180; step++ {
			r := newReq(db, "agent", "ula", time.Minute)
			r.Amount = 1
			must(t, db.CreateRequest(ctx, store.NewRequest{Request: r, State: store.Approved, Approval: &store.Approval{By: "policy"}}))
			must(t, db.CreateRequest(ctx, store.NewRequest{Request: newReq(db, "agent", "ula", time.Minute), State: store.Denied}))
			approvals, denials = append(approvals, clock.Now()), append(denials, clock.Now())

			reqs, _ := in(approvals, b5, 12)
			spend, _ := in(approvals, bh, 24)
			denied, _ := in(denials, bh, 24)
			want := store.Signals{AgentRequests1h: reqs, AgentUserRequests1h: reqs, AgentUserDenials24h: denied,
				UserSpend24h: float64(spend), AgentUserSpend24h: float64(spend)}
			got, err := db.ReadSignals(ctx, "agent", "ula", allSignals, clock.Now())
			must(t, err)
			if got != want {
				t.Fatalf("step %d: signals %+v, want %+v", step, got, want)
			}

			// What a sweep now would keep: r 12 buckets back and d, s 24
			// hours back, one bucket to spare.
			_, r13 := in(approvals, b5, 13)
			_, s25 := in(approvals, bh, 25)
			_, d25 := in(denials, bh, 25)
			live := map[string]int{"agent-user": len(r13) + len(s25) + len(d25) + 1, "user": len(s25), "agent": len(r13)}
			for name, key := range keys {
				n := int(rdb.HLen(ctx, key).Val())
				if n > max(48, live[name]) || n < live[name] {
					t.Fatalf("step %d: the %s hash holds %d fields, %d live", step, name, n, live[name])
				}
				crowded = crowded || live[name] > 48
				if n > live[name] {
					lingered++ // stale fields wait for the hash to pass 48
				}
			}
			clock.Advance(20 * time.Minute)
		}
		if !crowded || lingered == 0 {
			t.Errorf("crowded %v, lingered %d: the test misses a case of the sweep", crowded, lingered)
		}
	})
}

// TestLookupDevicesWithoutDecoding: the lookup counts the devices of the
// user it found, by id (the hint) or through the email index (the id it
// holds), without decoding the user's record for its id.
func TestLookupDevicesWithoutDecoding(t *testing.T) {
	backends(t, func(t *testing.T, db *store.DB, clock *fakeClock) {
		e := env{ctx: context.Background(), db: db, clock: clock}
		e.user(t, "pia", "pia@example.com")
		must(t, db.CreateEnrollment(e.ctx, "pia", "code-p", db.Now().Add(time.Minute)))
		if _, err := db.Enroll(e.ctx, "code-p", store.Device{ID: "dev-p", Name: "phone"}, ev(e, "device.enrolled")); err != nil {
			t.Fatal(err)
		}
		// An email without "@" (the store takes one; the admin API does
		// not) is found through the index too, by a second round trip.
		must(t, db.CreateUser(e.ctx, &store.User{ID: "quin", Email: "quin-at-home"}, ev(e, "user.created")))
		for hint, id := range map[string]string{"pia": "pia", "pia@example.com": "pia", "quin-at-home": "quin"} {
			l, err := db.LookupAuthorize(e.ctx, "agent", hint, []string{store.SigFirstTime}, db.Now())
			if err != nil || l.User == nil || l.User.ID != id || l.User.Devices != map[string]int64{"pia": 1}[id] {
				t.Fatalf("lookup %q: %+v %v", hint, l.User, err)
			}
			if wantSignals := hint == id; (l.SignalsFor == id) != wantSignals || l.Signals.FirstTime != wantSignals {
				t.Fatalf("signals of %q: %q %+v", hint, l.SignalsFor, l.Signals)
			}
		}
		if l, err := db.LookupAuthorize(e.ctx, "agent", "nobody", nil, db.Now()); err != nil || l.User != nil {
			t.Fatalf("lookup of no user: %+v %v", l.User, err)
		}
	})
}

// A user's grant index is swept of expired ids by one approval in eight:
// after many approvals whose grants expired, it holds a few expired ids at
// most, never all of them, and keeps the TTL of its longest grant.
func TestGrantIndexStaysSmall(t *testing.T) {
	backends(t, func(t *testing.T, db *store.DB, clock *fakeClock) {
		e := env{ctx: context.Background(), db: db, clock: clock}
		const n = 200
		var last *store.Grant
		for i := 0; i < n; i++ {
			r := e.pending(t, "agent", "gus", time.Minute, nil)
			last = grantFor(r, time.Minute)
			must(t, e.approve(t, r, last))
			clock.Advance(2 * time.Minute) // the grant has expired
		}
		key := db.Prefix() + "{s" + pad2(strconv.Itoa(store.ShardOf("gus"))) + "}:grants:gus"
		size, err := db.Redis().ZCard(e.ctx, key).Result()
		if err != nil || size == 0 || size > 64 {
			t.Fatalf("grant index of %d approvals holds %d ids (%v)", n, size, err)
		}
		if ttl := db.Redis().PTTL(e.ctx, key).Val(); ttl <= 0 {
			t.Fatalf("grant index without a TTL: %v", ttl)
		}
		if gs, err := db.GrantsFor(e.ctx, "gus"); err != nil || len(gs) != 0 {
			t.Fatalf("expired grants listed: %d %v", len(gs), err)
		}
	})
}
