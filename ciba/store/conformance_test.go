package store_test

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/countersign/countersign/ciba/store"
	"github.com/countersign/countersign/ciba/store/redistest"
)

// The conformance suite: one table of cases that together call every
// exported method of *store.DB, run on real Redis, on miniredis and on a
// Redis Cluster. A case names the methods it covers; a test checks by
// reflection that every method is covered, so a new method without a
// case fails.

// env is what a case runs against: a DB with a fixed clock.
type env struct {
	ctx   context.Context
	db    *store.DB
	clock *fakeClock
}

type conformanceCase struct {
	name   string
	covers []string
	run    func(t *testing.T, e env)
}

func TestConformance(t *testing.T) {
	var cluster redis.UniversalClient
	backends := []struct {
		name string
		open func(t *testing.T, i int) *store.DB
	}{
		{"redis", func(t *testing.T, _ int) *store.DB {
			s := redistest.Real(t)
			return store.Open(s.Client, s.Prefix)
		}},
		{"miniredis", func(t *testing.T, _ int) *store.DB {
			s := redistest.Mini(t)
			return store.Open(s.Client, s.Prefix)
		}},
		{"cluster", func(t *testing.T, i int) *store.DB {
			return store.Open(cluster, fmt.Sprintf("c%d:", i))
		}},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			if b.name == "cluster" {
				c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: redistest.Cluster(t)})
				t.Cleanup(func() { c.Close() })
				cluster = c
			}
			for i, c := range conformance {
				t.Run(c.name, func(t *testing.T) {
					db := b.open(t, i)
					clock := &fakeClock{t: time.Date(2026, 1, 15, 12, 0, 0, 0, time.UTC)}
					db.Now = clock.Now
					c.run(t, env{ctx: context.Background(), db: db, clock: clock})
				})
			}
		})
	}
}

// TestConformanceCoversEveryMethod fails for an exported method of
// *store.DB that no conformance case covers, and for a case naming a
// method that does not exist.
func TestConformanceCoversEveryMethod(t *testing.T) {
	covered := map[string]bool{}
	for _, c := range conformance {
		for _, m := range c.covers {
			covered[m] = true
		}
	}
	typ := reflect.TypeOf(&store.DB{})
	var missing []string
	for i := 0; i < typ.NumMethod(); i++ {
		name := typ.Method(i).Name
		if name == "Prefix" { // export_test.go: the tests' own accessor
			continue
		}
		if !covered[name] {
			missing = append(missing, name)
		}
		delete(covered, name)
	}
	if len(missing) > 0 {
		t.Errorf("methods of *store.DB without a conformance case: %v", missing)
	}
	for m := range covered {
		t.Errorf("a conformance case covers %s, which *store.DB does not have", m)
	}
}

// must fails the test on err.
func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// pending stores a device-pending request of client for user.
func (e env) pending(t *testing.T, client, user string, exp time.Duration, ob *store.Outbox) store.Request {
	t.Helper()
	r := newReq(e.db, client, user, exp)
	if ob != nil {
		ob.RequestID = r.ID
	}
	must(t, e.db.CreateRequest(e.ctx, store.NewRequest{Request: r, State: store.Pending, Interval: 5, Outbox: ob,
		Events: []store.Event{{At: e.db.Now(), Type: "risk.decision", RequestID: r.ID, User: user, Agent: client,
			Input: []byte(`{"request":{"kind":"ciba"}}`)}}}))
	return r
}

func (e env) approve(t *testing.T, r store.Request, g *store.Grant) error {
	t.Helper()
	return e.db.Decide(e.ctx, &r, store.Decision{Approve: true, Grant: g,
		Approval: &store.Approval{By: "device", DeviceID: "d1", At: e.db.Now()},
		Events:   []store.Event{{At: e.db.Now(), Type: "request.approved", RequestID: r.ID, User: r.UserID}}})
}

func (e env) deny(t *testing.T, r store.Request) error {
	t.Helper()
	return e.db.Decide(e.ctx, &r, store.Decision{Events: []store.Event{{At: e.db.Now(), Type: "request.denied", RequestID: r.ID}}})
}

func (e env) state(t *testing.T, id string) store.State {
	t.Helper()
	rs, err := e.db.RequestByID(e.ctx, id)
	must(t, err)
	return rs.State
}

func (e env) signals(t *testing.T, client, user string) store.Signals {
	t.Helper()
	s, err := e.db.ReadSignals(e.ctx, client, user, allSignals, e.db.Now())
	must(t, err)
	return s
}

func (e env) user(t *testing.T, id, email string) *store.User {
	t.Helper()
	u := &store.User{ID: id, Email: email, CreatedAt: e.db.Now()}
	must(t, e.db.CreateUser(e.ctx, u, store.Event{At: e.db.Now(), Type: "user.created", User: id}))
	return u
}

func ev(e env, typ string) store.Event { return store.Event{At: e.db.Now(), Type: typ} }

// grantFor is a grant of r that lives as long as its tokens may.
func grantFor(r store.Request, d time.Duration) *store.Grant {
	return &store.Grant{ID: store.NewID(), ClientID: r.ClientID, UserID: r.UserID, Scope: r.Scope,
		CreatedAt: r.CreatedAt, ExpiresAt: r.CreatedAt.Add(d)}
}

func contextWithCancel(e env) (context.Context, context.CancelFunc) { return context.WithCancel(e.ctx) }
