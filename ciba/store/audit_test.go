package store_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/countersign/countersign/ciba/store"
)

func auditN(t *testing.T, db *store.DB, clock *fakeClock, user string, n int) []string {
	t.Helper()
	var ids []string
	for i := 0; i < n; i++ {
		r := newReq(db, "agent", user, time.Minute)
		ids = append(ids, r.ID)
		if err := db.CreateRequest(context.Background(), store.NewRequest{Request: r, State: store.Pending, Interval: 5,
			Events: []store.Event{{At: db.Now(), Type: "risk.decision", RequestID: r.ID, User: user, Agent: "agent", Input: []byte(`{"n":1}`)}}}); err != nil {
			t.Fatal(err)
		}
		clock.Advance(time.Millisecond)
	}
	return ids
}

func TestAuditChainVerifiesAcrossNodesAndCatchesTampering(t *testing.T) {
	backends(t, func(t *testing.T, db *store.DB, clock *fakeClock) {
		ctx := context.Background()
		// A second DB on the same Redis and prefix plays another node with
		// its own cached chain heads: writes interleave on one chain.
		other := store.Open(db.Redis(), db.Prefix())
		other.Now = clock.Now
		for i := 0; i < 4; i++ {
			auditN(t, db, clock, "erin", 1)
			auditN(t, other, clock, "erin", 1)
		}
		rep, err := db.VerifyAudit(ctx)
		if err != nil || !rep.OK || rep.Checked != 8 {
			t.Fatalf("verify: %+v %v", rep, err)
		}
		evs, _, err := db.AuditEntries(ctx, store.AuditQuery{User: "erin"})
		if err != nil || len(evs) != 8 {
			t.Fatalf("entries: %d %v", len(evs), err)
		}
		for i := 1; i < len(evs); i++ {
			if evs[i].PrevHash != evs[i-1].Hash {
				t.Fatalf("chain broken at %d", i)
			}
		}
		// Edit an event in place.
		stream, id := streamOf(db, evs[3].ID)
		db.Redis().XDel(ctx, stream, id)
		rep, _ = db.VerifyAudit(ctx)
		if rep.OK || rep.Break == nil || rep.Break.EntryID != evs[4].ID || !strings.Contains(rep.Break.Reason, "removed") {
			t.Fatalf("deletion not caught: %+v", rep)
		}
	})
}

// An edited event breaks the chain at the next event, whose prev_hash no
// longer matches; an entry of the earlier format, which stored its own hash
// beside the body, is caught at itself.
func TestAuditEditIsCaught(t *testing.T) {
	for _, c := range []struct {
		name       string
		storedHash bool
		broken     int
	}{{"hash recomputed", false, 2}, {"hash stored (earlier format)", true, 1}} {
		t.Run(c.name, func(t *testing.T) {
			backends(t, func(t *testing.T, db *store.DB, clock *fakeClock) {
				ctx := context.Background()
				auditN(t, db, clock, "fred", 3)
				evs, _, _ := db.AuditEntries(ctx, store.AuditQuery{User: "fred"})
				stream, id := streamOf(db, evs[1].ID)
				// Rebuild the stream with one body edited (a stream cannot be
				// edited in place), each entry with its original hash stored
				// or none.
				all, _ := db.Redis().XRange(ctx, stream, "-", "+").Result()
				db.Redis().Del(ctx, stream)
				for i, m := range all {
					e := m.Values["e"]
					if m.ID == id {
						e = strings.Replace(e.(string), `"agent":"agent"`, `"agent":"evil"`, 1)
					}
					var h any
					if c.storedHash {
						h = evs[i].Hash
					}
					db.Redis().XAdd(ctx, redisXAdd{stream, m.ID, e, h}.args())
				}
				rep, _ := db.VerifyAudit(ctx)
				if rep.OK || rep.Break.EntryID != evs[c.broken].ID || !strings.Contains(rep.Break.Reason, "edited") {
					t.Fatalf("edit not caught: %+v", rep)
				}
			})
		})
	}
}

func TestAuditFiltersPagingAndTrim(t *testing.T) {
	backends(t, func(t *testing.T, db *store.DB, clock *fakeClock) {
		ctx := context.Background()
		a := auditN(t, db, clock, "gina", 5)
		auditN(t, db, clock, "hank", 3)
		evs, next, err := db.AuditEntries(ctx, store.AuditQuery{Limit: 3})
		if err != nil || len(evs) != 3 || next == "" {
			t.Fatalf("page 1: %d %q %v", len(evs), next, err)
		}
		seen := map[string]bool{}
		for _, e := range evs {
			seen[e.ID] = true
		}
		total := len(evs)
		for next != "" {
			evs, next, err = db.AuditEntries(ctx, store.AuditQuery{Limit: 3, Cursor: next})
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range evs {
				if seen[e.ID] {
					t.Fatalf("event %s twice", e.ID)
				}
				seen[e.ID] = true
			}
			total += len(evs)
		}
		if total != 8 {
			t.Fatalf("paged through %d events, want 8", total)
		}
		evs, _, _ = db.AuditEntries(ctx, store.AuditQuery{Request: a[2]})
		if len(evs) != 1 || evs[0].RequestID != a[2] {
			t.Fatalf("by request: %+v", evs)
		}
		evs, _, _ = db.AuditEntries(ctx, store.AuditQuery{Agent: "agent", Type: "risk"})
		if len(evs) != 8 {
			t.Fatalf("by agent and type prefix: %d", len(evs))
		}
		if _, _, err := db.AuditEntries(ctx, store.AuditQuery{Cursor: "!!"}); err != store.ErrBadCursor {
			t.Fatalf("bad cursor: %v", err)
		}
		last, err := db.LastDecisions(ctx, 4)
		if err != nil || len(last) != 4 || last[0].User != "hank" || string(last[0].Input) != `{"n":1}` {
			t.Fatalf("last decisions: %+v %v", last, err)
		}
		// Export then trim: only what was exported goes, and the chain
		// still verifies from the anchor.
		var exported []store.Event
		ids, err := db.ExportOlder(ctx, clock.Now().Add(-5*time.Millisecond), func(e store.Event) error { exported = append(exported, e); return nil })
		if err != nil || len(exported) == 0 || len(exported) >= 8 {
			t.Fatalf("export: %d %v", len(exported), err)
		}
		n, err := db.TrimExported(ctx, ids)
		if err != nil || n != int64(len(exported)) {
			t.Fatalf("trimmed %d of %d: %v", n, len(exported), err)
		}
		rep, err := db.VerifyAudit(ctx)
		if err != nil || !rep.OK || rep.Checked != 8-len(exported) {
			t.Fatalf("verify after trim: %+v %v", rep, err)
		}
	})
}

func streamOf(db *store.DB, eventID string) (string, string) {
	shard, id, _ := strings.Cut(eventID, "-")
	if shard == "16" {
		return db.Prefix() + "{dir}:audit", id
	}
	return db.Prefix() + "{s" + pad2(shard) + "}:audit", id
}

func pad2(s string) string {
	if len(s) == 1 {
		return "0" + s
	}
	return s
}

type redisXAdd struct {
	stream, id string
	e, h       any
}

func (x redisXAdd) args() *redis.XAddArgs {
	if x.h == nil {
		return &redis.XAddArgs{Stream: x.stream, ID: x.id, Values: []any{"e", x.e}}
	}
	return &redis.XAddArgs{Stream: x.stream, ID: x.id, Values: []any{"e", x.e, "h", x.h}}
}

// No change without its event, by construction: when the event cannot be
// written the transition leaves nothing behind.
func TestTransitionWithoutItsEventChangesNothing(t *testing.T) {
	backends(t, func(t *testing.T, db *store.DB, clock *fakeClock) {
		ctx := context.Background()
		r := newReq(db, "agent", "ivan", time.Minute)
		stream := db.Prefix() + "{s" + pad2(strconv.Itoa(store.ShardOf("ivan"))) + "}:audit"
		// Break the shard's audit stream: XADD now fails inside the script.
		if err := db.Redis().Set(ctx, stream, "not a stream", 0).Err(); err != nil {
			t.Fatal(err)
		}
		err := db.CreateRequest(ctx, store.NewRequest{Request: r, State: store.Approved, Approval: &store.Approval{By: "policy", GrantID: "g"},
			Grant:  &store.Grant{ID: "g", UserID: "ivan", ExpiresAt: clock.Now().Add(time.Hour)},
			Events: []store.Event{{At: clock.Now(), Type: "risk.decision", RequestID: r.ID}}})
		if err == nil {
			t.Fatal("the transition succeeded without its event")
		}
		if o, _ := db.Poll(ctx, r.ID, "agent"); o.Status != store.PollUnknown {
			t.Fatalf("request written without its event: %+v", o)
		}
		s, _ := db.ReadSignals(ctx, "agent", "ivan", []string{store.SigFirstTime, store.SigAgentUserRequests1h}, clock.Now())
		if !s.FirstTime || s.AgentUserRequests1h != 0 {
			t.Fatalf("counters moved without the event: %+v", s)
		}
		if gs, _ := db.GrantsFor(ctx, "ivan"); len(gs) != 0 {
			t.Fatalf("grant written without the event: %+v", gs)
		}
	})
}

// Many writers of one chain on two nodes at once: each node commits its
// writes in batches, some of them refused by a cap (nothing written, the
// rest of the batch then finds the head where it expected it or retries),
// and the chain holds every accepted write's event exactly once.
func TestAuditChainBatchesConcurrentWritersOfTwoNodes(t *testing.T) {
	backends(t, func(t *testing.T, db *store.DB, clock *fakeClock) {
		ctx := context.Background()
		other := store.Open(db.Redis(), db.Prefix())
		other.Now = clock.Now
		const writers, each = 8, 25
		var mu sync.Mutex
		accepted, refused := map[string]bool{}, 0
		var wg sync.WaitGroup
		for w := 0; w < writers; w++ {
			node := db
			if w%2 == 1 {
				node = other
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < each; i++ {
					r := newReq(node, "agent-"+strconv.Itoa(w), "erin", time.Minute)
					err := node.CreateRequest(ctx, store.NewRequest{Request: r, State: store.Pending, Interval: 5,
						Limits: store.Limits{PendingPerAgentUser: 20},
						Events: []store.Event{{At: node.Now(), Type: "risk.decision", RequestID: r.ID, User: "erin", Agent: "agent", Input: []byte(`{"n":1}`)}}})
					var le *store.LimitError
					mu.Lock()
					switch {
					case err == nil:
						accepted[r.ID] = true
					case errors.As(err, &le):
						refused++
					default:
						t.Errorf("create: %v", err)
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if len(accepted) != writers*20 || refused != writers*(each-20) {
			t.Fatalf("%d accepted, %d refused", len(accepted), refused)
		}
		rep, err := db.VerifyAudit(ctx)
		if err != nil || !rep.OK || rep.Checked != len(accepted) {
			t.Fatalf("verify: %+v %v", rep, err)
		}
		evs, _, err := db.AuditEntries(ctx, store.AuditQuery{User: "erin", Limit: 1000})
		if err != nil || len(evs) != len(accepted) {
			t.Fatalf("entries: %d %v", len(evs), err)
		}
		for _, e := range evs {
			if !accepted[e.RequestID] {
				t.Fatalf("event of a request not accepted, or twice: %s", e.RequestID)
			}
			delete(accepted, e.RequestID)
		}
	})
}

// An event's body is the event as JSON, its raw members included as given.
func TestEventBodyReadsBack(t *testing.T) {
	backends(t, func(t *testing.T, db *store.DB, clock *fakeClock) {
		ctx := context.Background()
		in := store.Event{At: db.Now(), Type: "authzen.decision", User: "ivy", Agent: "pep", Actors: []string{"pep"},
			Action: []byte(`{"subject":{"type":"user","id":"ivy"}}`), Risk: []byte(`{"level":"low","rules":[]}`),
			Input: []byte(`{"request":{"kind":"authzen"}}`), Path: "policy", Detail: "quote \" and <tag>"}
		must(t, db.Audit(ctx, "ivy", in, store.Event{At: db.Now(), Type: "token.refused", User: "ivy"}))
		evs, _, err := db.AuditEntries(ctx, store.AuditQuery{User: "ivy"})
		if err != nil || len(evs) != 2 {
			t.Fatalf("entries: %d %v", len(evs), err)
		}
		got := evs[0]
		if string(got.Action) != string(in.Action) || string(got.Risk) != string(in.Risk) || string(got.Input) != string(in.Input) ||
			got.Detail != in.Detail || got.Path != "policy" || len(got.Actors) != 1 || evs[1].Action != nil || evs[1].PrevHash != got.Hash {
			t.Fatalf("read back: %+v", evs)
		}
		if rep, err := db.VerifyAudit(ctx); err != nil || !rep.OK {
			t.Fatalf("verify: %+v %v", rep, err)
		}
	})
}
