package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/countersign/countersign/ciba/store"
)

func saveRuleset(t *testing.T, db *store.DB, name, src, by, comment string) int64 {
	t.Helper()
	v, err := db.SaveRulesetVersion(context.Background(), store.NewRuleset{Name: name, Digest: "d-" + name,
		Source: []byte(src), By: by, Comment: comment})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// receive reads the next message of a subscription, skipping confirmations.
func receive(t *testing.T, ps *redis.PubSub) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		m, err := ps.Receive(ctx)
		if err != nil {
			t.Fatalf("no message: %v", err)
		}
		if msg, ok := m.(*redis.Message); ok {
			return msg.Payload
		}
	}
}

func TestRulesetVersionsActivateRollback(t *testing.T) {
	backends(t, func(t *testing.T, db *store.DB, clock *fakeClock) {
		ctx := context.Background()
		if _, err := db.ActiveRuleset(ctx); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("empty store: %v", err)
		}
		if a, sh, err := db.RulesState(ctx); err != nil || a != 0 || sh != "" {
			t.Fatalf("empty state: %d %q %v", a, sh, err)
		}
		ps := db.SubscribeRules(ctx)
		defer ps.Close()
		if _, err := ps.Receive(ctx); err != nil { // the subscription confirmation
			t.Fatal(err)
		}

		// The ruleset a node activates at start: only when none is.
		v1, err := db.SaveRulesetVersion(ctx, store.NewRuleset{Name: "default", Digest: "d1", Source: []byte("one"),
			By: "countersign", Comment: "at start", OnlyIfNone: true})
		if err != nil || v1 != 1 {
			t.Fatalf("first: %d %v", v1, err)
		}
		if got := receive(t, ps); got != "active 1" {
			t.Fatalf("message %q", got)
		}
		if _, err := db.SaveRulesetVersion(ctx, store.NewRuleset{Name: "x", Digest: "dx", Source: []byte("x"), OnlyIfNone: true}); !errors.Is(err, store.ErrExists) {
			t.Fatalf("second start: %v", err)
		}
		clock.Advance(time.Minute)
		if v := saveRuleset(t, db, "strict", "two", "alice", "tighter limits"); v != 2 {
			t.Fatalf("second version %d", v)
		}
		if got := receive(t, ps); got != "active 2" {
			t.Fatalf("message %q", got)
		}
		a, err := db.ActiveRuleset(ctx)
		if err != nil || a.Version != 2 || string(a.Source) != "two" || a.Name != "strict" || a.Digest != "d-strict" ||
			a.ActivatedBy != "alice" || a.Comment != "tighter limits" || !a.ActivatedAt.Equal(clock.Now()) || !a.Active {
			t.Fatalf("active: %+v %v", a, err)
		}

		clock.Advance(time.Minute)
		if err := db.RollbackRuleset(ctx, 1, "bob"); err != nil {
			t.Fatal(err)
		}
		if got := receive(t, ps); got != "active 1" {
			t.Fatalf("message %q", got)
		}
		a, _ = db.ActiveRuleset(ctx)
		if a.Version != 1 || string(a.Source) != "one" || a.ActivatedBy != "bob" || a.CreatedBy != "countersign" || !a.ActivatedAt.Equal(clock.Now()) {
			t.Fatalf("after rollback: %+v", a)
		}
		if err := db.RollbackRuleset(ctx, 9, "bob"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("rollback to a missing version: %v", err)
		}
		if st, _, _ := db.RulesState(ctx); st != 1 {
			t.Fatalf("state after a refused rollback: %d", st)
		}

		vs, err := db.RulesetVersions(ctx)
		if err != nil || len(vs) != 2 || vs[0].Version != 2 || vs[0].Active || vs[1].Version != 1 || !vs[1].Active ||
			vs[0].Comment != "tighter limits" || vs[1].ActivatedBy != "bob" || vs[0].Source != nil {
			t.Fatalf("versions: %+v %v", vs, err)
		}

		// Every change is on the directory's audit chain, which verifies.
		evs, _, err := db.AuditEntries(ctx, store.AuditQuery{})
		if err != nil {
			t.Fatal(err)
		}
		var types []string
		for _, e := range evs {
			types = append(types, e.Type)
		}
		want := []string{store.EventRulesActivated, store.EventRulesActivated, store.EventRulesRolledBack}
		if len(types) != 3 || types[0] != want[0] || types[1] != want[1] || types[2] != want[2] {
			t.Fatalf("audit types %v", types)
		}
		if evs[1].Detail != "version 2 (strict, sha256 d-strict): tighter limits" || evs[1].Actors[0] != "alice" {
			t.Fatalf("audit event %+v", evs[1])
		}
		if rep, err := db.VerifyAudit(ctx); err != nil || !rep.OK {
			t.Fatalf("verify: %+v %v", rep, err)
		}
	})
}

// Two nodes (two DBs with their own audit head caches) activating at once
// get distinct versions and leave one valid chain.
func TestRulesetVersionsConcurrentNodes(t *testing.T) {
	backends(t, func(t *testing.T, db *store.DB, clock *fakeClock) {
		ctx := context.Background()
		other := store.Open(db.Redis(), db.Prefix())
		other.Now = clock.Now
		const each = 5
		errs := make(chan error, 2*each)
		seen := make(chan int64, 2*each)
		for _, node := range []*store.DB{db, other} {
			go func() {
				for i := 0; i < each; i++ {
					v, err := node.SaveRulesetVersion(ctx, store.NewRuleset{Name: "n", Digest: "d", Source: []byte("s"), By: "a"})
					errs <- err
					seen <- v
				}
			}()
		}
		got := map[int64]bool{}
		for i := 0; i < 2*each; i++ {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
			got[<-seen] = true
		}
		if len(got) != 2*each {
			t.Fatalf("versions %v", got)
		}
		vs, _ := db.RulesetVersions(ctx)
		if len(vs) != 2*each || vs[0].Version != 2*each {
			t.Fatalf("versions %+v", vs)
		}
		if rep, err := db.VerifyAudit(ctx); err != nil || !rep.OK || rep.Checked != 2*each {
			t.Fatalf("verify: %+v %v", rep, err)
		}
	})
}

func TestShadowRulesetAndStats(t *testing.T) {
	backends(t, func(t *testing.T, db *store.DB, clock *fakeClock) {
		ctx := context.Background()
		if _, _, err := db.Shadow(ctx); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("no shadow: %v", err)
		}
		if err := db.ClearShadowRuleset(ctx, "alice"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("clear without shadow: %v", err)
		}
		ps := db.SubscribeRules(ctx)
		defer ps.Close()
		if _, err := ps.Receive(ctx); err != nil {
			t.Fatal(err)
		}
		if err := db.SetShadowRuleset(ctx, store.ShadowRuleset{Name: "cand", Digest: "s1", Source: []byte("yaml"), SetBy: "alice"}); err != nil {
			t.Fatal(err)
		}
		if got := receive(t, ps); got != "shadow" {
			t.Fatalf("message %q", got)
		}
		if _, sh, _ := db.RulesState(ctx); sh != "s1" {
			t.Fatalf("shadow digest %q", sh)
		}
		// Two nodes' counts add up; counts for another digest are dropped.
		for _, d := range []store.ShadowStats{
			{Total: 3, Changed: 1, Moves: map[string]int64{"policy->device": 1}},
			{Total: 2, Changed: 2, Moves: map[string]int64{"policy->device": 1, "device->policy": 1}},
		} {
			if err := db.AddShadowStats(ctx, "s1", d); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.AddShadowStats(ctx, "old", store.ShadowStats{Total: 100, Changed: 100}); err != nil {
			t.Fatal(err)
		}
		sh, st, err := db.Shadow(ctx)
		if err != nil || sh.Name != "cand" || string(sh.Source) != "yaml" || sh.SetBy != "alice" || !sh.SetAt.Equal(clock.Now()) {
			t.Fatalf("shadow %+v %v", sh, err)
		}
		if st.Total != 5 || st.Changed != 3 || len(st.Moves) != 2 || st.Moves["policy->device"] != 2 || st.Moves["device->policy"] != 1 {
			t.Fatalf("stats %+v", st)
		}
		// A new candidate starts from zero.
		if err := db.SetShadowRuleset(ctx, store.ShadowRuleset{Name: "cand2", Digest: "s2", Source: []byte("y2"), SetBy: "bob"}); err != nil {
			t.Fatal(err)
		}
		if _, st, _ := db.Shadow(ctx); st.Total != 0 || len(st.Moves) != 0 {
			t.Fatalf("stats after replace %+v", st)
		}
		if err := db.ClearShadowRuleset(ctx, "bob"); err != nil {
			t.Fatal(err)
		}
		if _, _, err := db.Shadow(ctx); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("after clear: %v", err)
		}
		if rep, err := db.VerifyAudit(ctx); err != nil || !rep.OK || rep.Checked != 3 {
			t.Fatalf("verify: %+v %v", rep, err)
		}
	})
}
