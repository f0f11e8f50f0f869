package rulesync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/countersign/countersign/ciba/ratelog"
	"github.com/countersign/countersign/ciba/store"
	"github.com/countersign/countersign/risk"
	"github.com/countersign/countersign/rules"
)

// Observer receives every decision after the Syncer has counted it (the
// node's metrics).
type Observer interface {
	Decision(d risk.Decision)
}

// Options configure a Syncer. Zero values take the defaults.
type Options struct {
	// Initial is the ruleset source activated as the first version when
	// none is active (COUNTERSIGN_RULES); nil means rules.DefaultSource.
	Initial []byte
	// InitialComment is recorded with that first version (when Initial
	// is set).
	InitialComment string
	// By is the author recorded for that first version ("countersign").
	By string
	// Interval is the periodic re-read (5 s).
	Interval time.Duration
	// FlushInterval is how often shadow counts go to Redis (1 s).
	FlushInterval time.Duration
	Log           *slog.Logger
	// OnSwap is called after every swap of the active ruleset (metrics).
	OnSwap func(version int64, name, digest string)
	// Observer receives every decision passed to Syncer.Decision.
	Observer Observer
}

// Syncer follows the active ruleset version for one node. Its methods are
// safe for concurrent use.
type Syncer struct {
	db     *store.DB
	engine *risk.Engine
	opts   Options

	mu           sync.Mutex // serialises refresh
	version      atomic.Int64
	failed       atomic.Int64 // the stored version that does not compile here
	shadowDigest string

	statsMu sync.Mutex
	stats   map[string]*store.ShadowStats // by shadow digest, not yet flushed

	done chan struct{}

	// While Redis is down each loop fails on every turn: one line at once,
	// then one per interval with a count, then "recovered".
	subFail, refreshFail, flushFail *ratelog.Failure
}

// Start activates the initial ruleset when no version is active, loads the
// active version into engine, subscribes to changes and follows them until
// ctx ends. It fails when Redis cannot be read or the initial ruleset does
// not compile.
func Start(ctx context.Context, db *store.DB, engine *risk.Engine, opts Options) (*Syncer, error) {
	if opts.Interval <= 0 {
		opts.Interval = 5 * time.Second
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = time.Second
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.By == "" {
		opts.By = "countersign"
	}
	s := &Syncer{db: db, engine: engine, opts: opts, stats: map[string]*store.ShadowStats{}, done: make(chan struct{}),
		subFail:     ratelog.New(opts.Log, slog.LevelWarn, "rules subscription interrupted"),
		refreshFail: ratelog.New(opts.Log, slog.LevelWarn, "rules refresh failed"),
		flushFail:   ratelog.New(opts.Log, slog.LevelWarn, "shadow counts not saved")}
	src, comment := opts.Initial, opts.InitialComment
	if src == nil {
		src, comment = rules.DefaultSource, "the embedded default ruleset"
	}
	initial, err := rules.Load(src)
	if err != nil {
		return nil, fmt.Errorf("rulesync: initial ruleset: %w", err)
	}
	// docs/api.md Configuration: COUNTERSIGN_RULES is activated at start only
	// when no version is active.
	_, err = db.SaveRulesetVersion(ctx, store.NewRuleset{Name: initial.Name, Digest: initial.Digest, Source: initial.Source,
		By: opts.By, Comment: comment, OnlyIfNone: true})
	if err != nil && !errors.Is(err, store.ErrExists) {
		return nil, fmt.Errorf("rulesync: activate the initial ruleset: %w", err)
	}
	if err := s.Refresh(ctx); err != nil {
		return nil, err
	}
	ps := db.SubscribeRules(ctx)
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	_, err = ps.Receive(rctx) // the confirmation: subscribed from here on
	cancel()
	if err != nil {
		ps.Close()
		return nil, fmt.Errorf("rulesync: subscribe: %w", err)
	}
	// A change between the first read and the subscription had no listener.
	if err := s.Refresh(ctx); err != nil {
		ps.Close()
		return nil, err
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); s.listen(ctx, ps) }()
	go func() { defer wg.Done(); s.tick(ctx) }()
	go func() { wg.Wait(); close(s.done) }()
	return s, nil
}

// Done is closed once the Syncer has stopped (its context ended) and
// flushed its last shadow counts.
func (s *Syncer) Done() <-chan struct{} { return s.done }

// Version returns the stored version this node runs (0 before any).
func (s *Syncer) Version() int64 { return s.version.Load() }

// RulesVersion returns Version as a string, for /readyz.
func (s *Syncer) RulesVersion() string { return strconv.FormatInt(s.Version(), 10) }

// Ready reports an error while the node cannot run the active version.
func (s *Syncer) Ready() error {
	if f := s.failed.Load(); f != 0 {
		return fmt.Errorf("ruleset version %d does not compile on this node (running version %d)", f, s.Version())
	}
	if s.Version() == 0 {
		return errors.New("no ruleset version loaded")
	}
	return nil
}

func (s *Syncer) listen(ctx context.Context, ps *redis.PubSub) {
	// Receive does not watch ctx while it waits: closing the subscription
	// is what ends it.
	stop := context.AfterFunc(ctx, func() { ps.Close() })
	defer stop()
	defer ps.Close()
	backoff := 50 * time.Millisecond
	for {
		m, err := ps.Receive(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			// go-redis reconnects and resubscribes on the next Receive;
			// the confirmation then triggers a re-read.
			s.subFail.Fail(err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		s.subFail.OK()
		switch m.(type) {
		case *redis.Subscription, *redis.Message:
			// Whatever the message says, re-read: the stored state decides.
			s.refreshed(ctx, s.Refresh(ctx))
		}
	}
}

func (s *Syncer) tick(ctx context.Context) {
	check := time.NewTicker(s.opts.Interval)
	defer check.Stop()
	flush := time.NewTicker(s.opts.FlushInterval)
	defer flush.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = s.Flush(fctx)
			cancel()
			return
		case <-check.C:
			s.refreshed(ctx, s.Refresh(ctx))
		case <-flush.C:
			if err := s.Flush(ctx); err != nil && ctx.Err() == nil {
				s.flushFail.Fail(err)
			} else if err == nil {
				s.flushFail.OK()
			}
		}
	}
}

// Apply puts the stored active version and shadow in force on this node
// now; the admin API calls it after a change and before it answers, so the
// change decides the next request this node serves. It does not depend on
// the caller staying connected; a failure is logged and the pub/sub
// message or the periodic check retries.
func (s *Syncer) Apply(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := s.Refresh(ctx); err != nil {
		s.opts.Log.Warn("rules change not applied on this node yet; it follows within seconds", "err", err)
	}
}

// refreshed logs the outcome of a background Refresh.
func (s *Syncer) refreshed(ctx context.Context, err error) {
	switch {
	case err != nil && ctx.Err() == nil:
		s.refreshFail.Fail(err)
	case err == nil:
		s.refreshFail.OK()
	}
}

// Refresh compares the stored active version and shadow with the ones in
// use and loads what changed.
func (s *Syncer) Refresh(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	active, shadow, err := s.db.RulesState(ctx)
	if err != nil {
		return fmt.Errorf("rulesync: %w", err)
	}
	if active != 0 && active != s.version.Load() && active != s.failed.Load() {
		if err := s.loadActive(ctx); err != nil {
			return err
		}
	}
	if shadow != s.shadowDigest {
		return s.loadShadow(ctx)
	}
	return nil
}

func (s *Syncer) loadActive(ctx context.Context) error {
	rv, err := s.db.ActiveRuleset(ctx)
	if err != nil {
		return fmt.Errorf("rulesync: active ruleset: %w", err)
	}
	rs, err := rules.Load(rv.Source)
	if err != nil {
		// Fail safe: keep the ruleset in use rather than run none.
		s.failed.Store(rv.Version)
		s.opts.Log.Error("active ruleset does not compile on this node; keeping the one in use",
			"version", rv.Version, "running", s.version.Load(), "err", err)
		return nil
	}
	s.engine.Swap(rs)
	// Metrics first: whoever sees the new version (/readyz) then finds
	// the metrics already saying so.
	if s.opts.OnSwap != nil {
		s.opts.OnSwap(rv.Version, rs.Name, rs.Digest)
	}
	s.version.Store(rv.Version)
	s.failed.Store(0)
	s.opts.Log.Info("ruleset activated", "version", rv.Version, "name", rs.Name, "digest", rs.Digest)
	return nil
}

func (s *Syncer) loadShadow(ctx context.Context) error {
	sh, _, err := s.db.Shadow(ctx)
	if errors.Is(err, store.ErrNotFound) {
		s.engine.SetShadow(nil)
		s.shadowDigest = ""
		return nil
	}
	if err != nil {
		return fmt.Errorf("rulesync: shadow ruleset: %w", err)
	}
	s.shadowDigest = sh.Digest
	rs, err := rules.Load(sh.Source)
	if err != nil {
		s.engine.SetShadow(nil)
		s.opts.Log.Error("shadow ruleset does not compile on this node; shadow mode off here", "digest", sh.Digest, "err", err)
		return nil
	}
	s.engine.SetShadow(rs)
	return nil
}

// Decision counts a decision's shadow outcome, when it has one, and passes
// the decision on to Options.Observer. It never changes the decision.
func (s *Syncer) Decision(d risk.Decision) {
	if d.Shadow != nil && d.ShadowRuleset != "" {
		s.statsMu.Lock()
		st := s.stats[d.ShadowRuleset]
		if st == nil {
			st = &store.ShadowStats{Moves: map[string]int64{}}
			s.stats[d.ShadowRuleset] = st
		}
		st.Total++
		if d.Shadow.Path != d.Path {
			st.Changed++
			st.Moves[rules.Move(d.Path, d.Shadow.Path)]++
		}
		s.statsMu.Unlock()
	}
	if s.opts.Observer != nil {
		s.opts.Observer.Decision(d)
	}
}

// Flush adds the shadow counts gathered since the last flush to Redis.
func (s *Syncer) Flush(ctx context.Context) error {
	s.statsMu.Lock()
	pending := s.stats
	s.stats = map[string]*store.ShadowStats{}
	s.statsMu.Unlock()
	var errs []error
	for digest, st := range pending {
		if err := s.db.AddShadowStats(ctx, digest, *st); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
