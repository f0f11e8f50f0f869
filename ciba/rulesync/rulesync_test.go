package rulesync_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/countersign/countersign/ciba/admin"
	"github.com/countersign/countersign/ciba/oauth"
	"github.com/countersign/countersign/ciba/rulesync"
	"github.com/countersign/countersign/ciba/store"
	"github.com/countersign/countersign/ciba/store/redistest"
	"github.com/countersign/countersign/risk"
	"github.com/countersign/countersign/rules"
)

func TestMain(m *testing.M) { redistest.Main(m) }

func ruleset(name string, limit int) []byte {
	return []byte(`format: countersign/v1
name: ` + name + `
rules:
  - id: over-limit
    when: action.amount > ` + strconv.Itoa(limit) + `.0
    decision: require_device
    reason: over the limit
`)
}

func mustLoad(t *testing.T, src []byte) *rules.Ruleset {
	t.Helper()
	rs, err := rules.Load(src)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// activate stores and activates src as another node's admin would.
func activate(t *testing.T, db *store.DB, src []byte) int64 {
	t.Helper()
	rs := mustLoad(t, src)
	v, err := db.SaveRulesetVersion(context.Background(), store.NewRuleset{Name: rs.Name, Digest: rs.Digest, Source: src, By: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// eventually polls cond until it holds or a generous deadline passes (a
// deadline, not a timed assertion).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type server struct {
	*redistest.Server
	db *store.DB
}

func backends(t *testing.T, f func(t *testing.T, s server)) {
	for _, b := range []struct {
		name string
		open func(testing.TB) *redistest.Server
	}{{"redis", redistest.Real}, {"miniredis", redistest.Mini}} {
		t.Run(b.name, func(t *testing.T) {
			rs := b.open(t)
			f(t, server{rs, store.Open(rs.Client, rs.Prefix)})
		})
	}
}

func start(t *testing.T, db *store.DB, opts rulesync.Options) (*rulesync.Syncer, *risk.Engine) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	eng := risk.NewEngine(nil, nil)
	if opts.Log == nil {
		opts.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s, err := rulesync.Start(ctx, db, eng, opts)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); <-s.Done() })
	return s, eng
}

func TestStartActivatesInitialOnce(t *testing.T) {
	backends(t, func(t *testing.T, rs server) {
		var swaps []int64
		s, eng := start(t, rs.db, rulesync.Options{OnSwap: func(v int64, name, digest string) {
			if name != "default" || digest != rules.Default().Digest {
				t.Errorf("OnSwap(%d, %q, %q)", v, name, digest)
			}
			swaps = append(swaps, v)
		}})
		if s.Version() != 1 || s.RulesVersion() != "1" || eng.Active().Digest != rules.Default().Digest || s.Ready() != nil {
			t.Fatalf("version %d, digest %s, ready %v", s.Version(), eng.Active().Digest, s.Ready())
		}
		if len(swaps) != 1 || swaps[0] != 1 {
			t.Fatalf("swaps %v", swaps)
		}
		// A second node started with a --rules file does not replace it.
		s2, eng2 := start(t, rs.db, rulesync.Options{Initial: ruleset("file", 10)})
		if s2.Version() != 1 || eng2.Active().Digest != rules.Default().Digest {
			t.Fatalf("second node: version %d, %s", s2.Version(), eng2.Active().Name)
		}
		a, err := rs.db.ActiveRuleset(context.Background())
		if err != nil || a.ActivatedBy != "countersign" || a.Comment != "the embedded default ruleset" {
			t.Fatalf("stored: %+v %v", a, err)
		}
	})
}

func TestStartWithRulesFile(t *testing.T) {
	backends(t, func(t *testing.T, rs server) {
		src := ruleset("file", 10)
		s, eng := start(t, rs.db, rulesync.Options{Initial: src, InitialComment: "from rules.yaml"})
		if s.Version() != 1 || eng.Active().Digest != mustLoad(t, src).Digest {
			t.Fatalf("version %d %s", s.Version(), eng.Active().Name)
		}
		if _, err := rulesync.Start(context.Background(), rs.db, risk.NewEngine(nil, nil), rulesync.Options{Initial: []byte("format: nope")}); err == nil {
			t.Fatal("a broken initial ruleset started")
		}
	})
}

func TestActivationAndRollbackFollowed(t *testing.T) {
	backends(t, func(t *testing.T, rs server) {
		// The periodic check is off (1 h): only pub/sub can move the node.
		s, eng := start(t, rs.db, rulesync.Options{Interval: time.Hour})
		src := ruleset("strict", 5)
		digest := mustLoad(t, src).Digest
		v := activate(t, rs.db, src)
		eventually(t, "the node runs version 2", func() bool { return s.Version() == v && eng.Active().Digest == digest })
		if err := rs.db.RollbackRuleset(context.Background(), 1, "bob"); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the node is back on version 1", func() bool {
			return s.Version() == 1 && eng.Active().Digest == rules.Default().Digest
		})
	})
}

// A node that missed the message (here: the pointer moved without one)
// catches up on its periodic check.
func TestPeriodicCheckCatchesUp(t *testing.T) {
	backends(t, func(t *testing.T, rs server) {
		s, eng := start(t, rs.db, rulesync.Options{Interval: 20 * time.Millisecond})
		activate(t, rs.db, ruleset("strict", 5))
		eventually(t, "version 2", func() bool { return s.Version() == 2 })
		// Move the active pointer behind the node's back: no message.
		if err := rs.Client.Set(context.Background(), rs.Prefix+"{dir}:rules:active", "1", 0).Err(); err != nil {
			t.Fatal(err)
		}
		eventually(t, "back on version 1 without a message", func() bool {
			return s.Version() == 1 && eng.Active().Digest == rules.Default().Digest
		})
	})
}

// A node whose subscription dropped re-reads the active version when it
// resubscribes, without waiting for the periodic check.
func TestResubscribeCatchesUp(t *testing.T) {
	rs := redistest.Real(t) // CLIENT KILL: real Redis only
	db := store.Open(rs.Client, rs.Prefix)
	s, _ := start(t, db, rulesync.Options{Interval: time.Hour})
	activate(t, db, ruleset("strict", 5))
	eventually(t, "version 2", func() bool { return s.Version() == 2 })
	ctx := context.Background()
	if err := rs.Client.Set(ctx, rs.Prefix+"{dir}:rules:active", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rs.Client.Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "version 1 after resubscribing", func() bool { return s.Version() == 1 })
}

func TestBrokenVersionKeepsTheOldOne(t *testing.T) {
	backends(t, func(t *testing.T, rs server) {
		s, eng := start(t, rs.db, rulesync.Options{Interval: 20 * time.Millisecond})
		// The store does not compile rulesets: a version written by a
		// newer node (or by hand) may not compile here.
		bad := []byte("format: countersign/v1\nname: bad\nrules:\n  - id: x\n    when: nope.field\n    score: 1\n    reason: r\n")
		if _, err := rs.db.SaveRulesetVersion(context.Background(), store.NewRuleset{Name: "bad", Digest: "x", Source: bad, By: "a"}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "not ready", func() bool { return s.Ready() != nil })
		if s.Version() != 1 || eng.Active().Digest != rules.Default().Digest {
			t.Fatalf("version %d, %s", s.Version(), eng.Active().Name)
		}
		// A good version after it is taken, and the node is ready again.
		activate(t, rs.db, ruleset("good", 5))
		eventually(t, "version 3", func() bool { return s.Version() == 3 && s.Ready() == nil })
	})
}

func TestShadowFollowedAndCounted(t *testing.T) {
	backends(t, func(t *testing.T, rs server) {
		ctx := context.Background()
		activate(t, rs.db, ruleset("active", 100))
		s, eng := start(t, rs.db, rulesync.Options{Interval: time.Hour, FlushInterval: time.Hour})
		cand := mustLoad(t, ruleset("candidate", 10))
		if err := rs.db.SetShadowRuleset(ctx, store.ShadowRuleset{Name: cand.Name, Digest: cand.Digest, Source: cand.Source, SetBy: "alice"}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "shadow set", func() bool { return eng.Shadow() != nil && eng.Shadow().Digest == cand.Digest })
		for _, amount := range []float64{5, 50, 60, 500} {
			in := &rules.Input{Action: rules.Action{Details: []map[string]any{{"type": "payment_initiation", "amount": amount}}}}
			in.Action.Derive()
			d := eng.Assess(ctx, in)
			if d.Shadow == nil || (amount == 50 && (d.Path != rules.PathPolicy || d.Shadow.Path != rules.PathDevice)) {
				t.Fatalf("amount %v: %+v", amount, d)
			}
			s.Decision(d)
		}
		if err := s.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		_, st, err := rs.db.Shadow(ctx)
		if err != nil || st.Total != 4 || st.Changed != 2 || st.Moves["policy->device"] != 2 || len(st.Moves) != 1 {
			t.Fatalf("stats %+v %v", st, err)
		}
		if eng.Active().Name != "active" {
			t.Fatalf("shadow changed the active ruleset: %s", eng.Active().Name)
		}
		if err := rs.db.ClearShadowRuleset(ctx, "alice"); err != nil {
			t.Fatal(err)
		}
		eventually(t, "shadow off", func() bool { return eng.Shadow() == nil })
	})
}

type countObserver struct{ n int }

func (c *countObserver) Decision(risk.Decision) { c.n++ }

func TestDecisionForwardsToObserver(t *testing.T) {
	rs := redistest.Mini(t)
	obs := &countObserver{}
	s, eng := start(t, store.Open(rs.Client, rs.Prefix), rulesync.Options{Observer: obs})
	s.Decision(eng.Assess(context.Background(), &rules.Input{}))
	if obs.n != 1 {
		t.Fatalf("observer saw %d decisions", obs.n)
	}
}

// fixedSignals stands in for Redis behind the engine's signal reader, so
// that the benchmark measures evaluation, not a round trip.
type fixedSignals struct{}

func (fixedSignals) ReadSignals(context.Context, risk.SignalQuery) (rules.Signals, error) {
	return rules.Signals{AgentUserRequests1h: 3, UserSpend24h: 120}, nil
}

// BenchmarkAssess compares risk.Assess on the ruleset loaded at start
// with the same on a ruleset swapped in by the Syncer (no regression).
func BenchmarkAssess(b *testing.B) {
	rs := redistest.Mini(b)
	db := store.Open(rs.Client, rs.Prefix)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	eng := risk.NewEngine(fixedSignals{}, nil)
	s, err := rulesync.Start(ctx, db, eng, rulesync.Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	in := &rules.Input{
		Agent:   rules.Agent{ClientID: "a", TrustTier: rules.TrustStandard},
		User:    rules.User{ID: "u", Timezone: "Europe/Berlin", Attributes: map[string]any{"spending_limit": 1000.0}},
		Action:  rules.Action{Details: []map[string]any{{"type": "payment_initiation", "amount": 50.0, "currency": "EUR"}}},
		Request: rules.Request{Kind: rules.KindCIBA, IP: "203.0.113.7", Time: rules.DefaultTestTime},
	}
	in.Action.Derive()
	run := func(b *testing.B) {
		for b.Loop() {
			c := *in
			if d := eng.Assess(context.Background(), &c); d.Path == "" {
				b.Fatal("no decision")
			}
		}
	}
	b.Run("initial", run)
	src := append(append([]byte(nil), rules.DefaultSource...), "\n# reloaded\n"...)
	reloaded, err := rules.Load(src)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := db.SaveRulesetVersion(ctx, store.NewRuleset{Name: reloaded.Name, Digest: reloaded.Digest, Source: src, By: "bench"}); err != nil {
		b.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); s.Version() != 2; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatal("the reload never arrived")
		}
	}
	if eng.Active().Digest != reloaded.Digest {
		b.Fatal("not swapped")
	}
	b.Run("after-reload", run)
}

// An activation, rollback or shadow change made through the admin API is in
// force on the answering node when the call returns, without pub/sub: the
// node here has stopped following (its context ended), so only the admin
// call itself can have moved it.
func TestAdminChangeInForceWhenTheCallReturns(t *testing.T) {
	backends(t, func(t *testing.T, rs server) {
		ctx, cancel := context.WithCancel(context.Background())
		eng := risk.NewEngine(nil, nil)
		s, err := rulesync.Start(ctx, rs.db, eng, rulesync.Options{Interval: time.Hour,
			Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		cancel()
		<-s.Done()
		r := &admin.Rules{DB: rs.db, AdminName: "alice", Applier: s}
		src := ruleset("strict", 5)
		body, _ := json.Marshal(map[string]any{"ruleset": string(src)})
		ref, err := r.Activate(context.Background(), body)
		if err != nil || ref.Version != 2 {
			t.Fatalf("activate: %+v %v", ref, err)
		}
		if s.Version() != 2 || eng.Active().Digest != mustLoad(t, src).Digest {
			t.Fatalf("after activate the node runs version %d (%s)", s.Version(), eng.Active().Name)
		}
		if _, err := r.Rollback(context.Background(), []byte(`{"version":1}`)); err != nil {
			t.Fatal(err)
		}
		if s.Version() != 1 || eng.Active().Digest != rules.Default().Digest {
			t.Fatalf("after rollback the node runs version %d (%s)", s.Version(), eng.Active().Name)
		}
		if _, err := r.SetShadow(context.Background(), body); err != nil {
			t.Fatal(err)
		}
		if sh := eng.Shadow(); sh == nil || sh.Name != "strict" {
			t.Fatalf("shadow after set: %v", sh)
		}
		if err := r.ClearShadow(context.Background()); err != nil || eng.Shadow() != nil {
			t.Fatalf("shadow after clear: %v %v", eng.Shadow(), err)
		}
	})
}

// slowRule is within the cost model but takes hundreds of microseconds on
// a 1,024-character binding message (about ten times the limit below).
const slowRule = `format: countersign/v1
name: slow
rules:
  - id: slow
    when: action.binding_message.matches(r'(\pL|\pN|\pP|\pS|\pM){80}$')
    score: 1
    reason: r
`

// Validate, activate and shadow refuse a ruleset with a rule slower than
// the limit on the sample inputs, naming it; nothing becomes active.
func TestAdminRefusesSlowRules(t *testing.T) {
	backends(t, func(t *testing.T, rs server) {
		s, eng := start(t, rs.db, rulesync.Options{})
		r := &admin.Rules{DB: rs.db, AdminName: "alice", Applier: s, RuleTimeLimit: 30 * time.Microsecond}
		body, _ := json.Marshal(map[string]any{"ruleset": slowRule})
		check := func(what string, err error) {
			t.Helper()
			var oe *oauth.Error
			if !errors.As(err, &oe) || oe.Code != "invalid_ruleset" || oe.Status != 400 {
				t.Fatalf("%s: %v", what, err)
			}
			ps, _ := oe.Extra["problems"].([]rules.Problem)
			if len(ps) != 1 || ps[0].Rule != "slow" || ps[0].Line != 5 || ps[0].Column != 11 ||
				!strings.Contains(ps[0].Message, "at most 30µs is allowed") {
				t.Fatalf("%s: problems %+v", what, ps)
			}
		}
		_, err := r.Validate(context.Background(), body)
		check("validate", err)
		_, err = r.Activate(context.Background(), body)
		check("activate", err)
		_, err = r.SetShadow(context.Background(), body)
		check("shadow", err)
		if s.Version() != 1 || eng.Active().Name != "default" || eng.Shadow() != nil {
			t.Fatalf("a refused ruleset is in use: version %d, %s", s.Version(), eng.Active().Name)
		}
	})
}
