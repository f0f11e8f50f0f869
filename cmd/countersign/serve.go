package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/countersign/countersign/ciba"
	"github.com/countersign/countersign/ciba/admin"
	"github.com/countersign/countersign/ciba/dpop"
	"github.com/countersign/countersign/ciba/rulesync"
	"github.com/countersign/countersign/ciba/server"
	"github.com/countersign/countersign/ciba/store"
	"github.com/countersign/countersign/ciba/token"
	"github.com/countersign/countersign/notify"
	"github.com/countersign/countersign/risk"
	"github.com/countersign/countersign/rules"
)

// node is one running server node, for serve and for tests.
type node struct {
	cfg     *Config
	db      *store.DB
	service *ciba.Service
	handler http.Handler
	metrics http.Handler // /metrics, for --metrics-listen
	keys    *ciba.KeyRing
	engine  *risk.Engine
	pusher  *ciba.DevicePusher
	worker  *ciba.Worker
	// stopWorker ends the outbox worker and waits for it.
	stopWorker func()
	close      func()
	// closers run in reverse order on close.
	closers []func()
}

// nodeParts are what a node builds before its protocol service.
type nodeParts struct {
	log     *slog.Logger
	now     func() time.Time
	initial []byte // the --rules file, when given
	dpop    *dpop.Verifier
	vapid   notify.VAPIDKeys
	policy  notify.EndpointPolicy
	metrics *server.Metrics
	syncer  *rulesync.Syncer
}

// newNode wires a node from its configuration: store, keys, rules, the
// protocol service, background work, then the HTTP handler.
func newNode(ctx context.Context, cfg *Config, log *slog.Logger, stdout io.Writer, now func() time.Time) (*node, error) {
	if cfg.Issuer == "" {
		return nil, errors.New("no issuer: serve derives it from the bound address before starting a node")
	}
	n := &node{cfg: cfg}
	routeRedisLog(log)
	// The node's background work (rules, keys, outbox) ends with the node,
	// before its Redis connection closes.
	ctx, cancelNode := context.WithCancel(ctx)
	n.closers = []func(){cancelNode}
	n.close = func() {
		for i := len(n.closers) - 1; i >= 0; i-- {
			n.closers[i]()
		}
	}
	p := &nodeParts{log: log, now: now}
	for _, step := range []func() error{
		func() error { return n.openStore(ctx, log, stdout, now) },
		func() error { return n.loadParts(ctx, p) },
		func() error { n.buildService(p); return nil },
		func() error { n.startBackground(ctx, p); return nil },
	} {
		if err := step(); err != nil {
			n.close()
			return nil, err
		}
	}
	n.closers = append(n.closers, n.stopWorker, cancelNode)
	n.handler = n.newHandler(p)
	return n, nil
}

// openStore connects to Redis (or starts the embedded store) and checks
// that it answers.
func (n *node) openStore(ctx context.Context, log *slog.Logger, stdout io.Writer, now func() time.Time) error {
	var rdb redis.UniversalClient
	if n.cfg.RedisURL == "" {
		addr, err := n.startEmbedded(ctx, log, stdout)
		if err != nil {
			return err
		}
		rdb = redis.NewUniversalClient(withDeadlines(&redis.UniversalOptions{Addrs: []string{addr}}, n.cfg.RequestTimeout))
	} else {
		o, err := redisOptions(n.cfg.RedisURL)
		if err != nil {
			return err
		}
		rdb = redis.NewUniversalClient(withDeadlines(o, n.cfg.RequestTimeout))
	}
	n.closers = append(n.closers, func() { rdb.Close() })
	n.db = store.Open(rdb, n.cfg.KeyPrefix)
	n.db.Now = now
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := n.db.Ping(pctx); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	return nil
}

// startEmbedded starts the in-process store of a trial run and returns
// its address; without an admin token it makes one and prints it.
func (n *node) startEmbedded(ctx context.Context, log *slog.Logger, stdout io.Writer) (string, error) {
	m := miniredis.NewMiniRedis()
	if err := m.StartAddr("127.0.0.1:0"); err != nil {
		return "", err
	}
	// miniredis does not count TTLs down by itself: tick it.
	tctx, cancel := context.WithCancel(ctx)
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-tctx.Done():
				return
			case <-t.C:
				m.FastForward(time.Second)
			}
		}
	}()
	n.closers = append(n.closers, cancel, m.Close)
	log.Warn("EMBEDDED STORE: no --redis-url given; all state lives in this process's memory only and is lost on exit. Use COUNTERSIGN_REDIS_URL for anything but a trial.")
	if n.cfg.AdminToken == "" {
		b := make([]byte, 24)
		_, _ = rand.Read(b)
		n.cfg.AdminToken = base64.RawURLEncoding.EncodeToString(b)
		fmt.Fprintf(stdout, "Admin token (generated for this run): %s\n  export COUNTERSIGN_ADMIN_TOKEN=%s\n", n.cfg.AdminToken, n.cfg.AdminToken)
	}
	return m.Addr(), nil
}

// loadParts loads what the service is built from: signing keys, the
// ruleset and its engine, the DPoP verifier, VAPID keys, and the rules
// syncer that keeps the engine on the active ruleset.
func (n *node) loadParts(ctx context.Context, p *nodeParts) error {
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	keys, err := ciba.LoadKeys(pctx, n.db)
	if err != nil {
		return fmt.Errorf("signing keys: %w", err)
	}
	n.keys = keys
	rs, initial, err := loadRuleset(n.cfg.RulesFile)
	if err != nil {
		return err
	}
	p.initial = initial
	n.engine = risk.NewEngine(ciba.SignalReader{DB: n.db}, rs)
	n.engine.Deadline = n.cfg.RuleDeadline
	if p.dpop, err = n.dpopVerifier(pctx, p.now); err != nil {
		return err
	}
	if p.vapid, err = ciba.LoadVAPID(pctx, n.db); err != nil {
		return fmt.Errorf("VAPID keys: %w", err)
	}
	p.policy = notify.EndpointPolicy{AllowHTTP: n.cfg.Dev, AllowPrivate: n.cfg.Dev}
	p.metrics = server.NewMetrics()
	return n.startRuleSync(ctx, p)
}

// loadRuleset reads --rules (the built-in default without it); initial
// is the file's source, stored as version 1 when nothing is active yet.
func loadRuleset(file string) (rs *rules.Ruleset, initial []byte, err error) {
	if file == "" {
		return rules.Default(), nil, nil
	}
	src, err := os.ReadFile(file)
	if err != nil {
		return nil, nil, err
	}
	if rs, err = rules.Load(src); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", file, err)
	}
	return rs, src, nil
}

// dpopVerifier builds the /token DPoP verifier; with --dpop-nonce it
// hands out server nonces (RFC 9449 §8) keyed by a secret shared by all
// nodes through Redis.
func (n *node) dpopVerifier(ctx context.Context, now func() time.Time) (*dpop.Verifier, error) {
	seed := make([]byte, 32)
	_, _ = rand.Read(seed)
	nonceKey, err := n.db.LoadOrInit(ctx, "dpop-nonce-key", seed)
	if err != nil {
		return nil, fmt.Errorf("DPoP nonce key: %w", err)
	}
	v := &dpop.Verifier{Algs: dpop.DefaultAlgs, IATWindow: time.Minute, Now: now, Replay: n.db}
	if n.cfg.DPoPNonce {
		v.Nonces = &dpop.Nonces{Key: func() []byte { return nonceKey }, Period: 5 * time.Minute, Now: now}
	}
	return v, nil
}

// startRuleSync makes every node follow activations and rollbacks of the
// active ruleset, which lives in Redis (pub/sub plus a periodic check).
// --rules becomes version 1 only when nothing is active yet.
func (n *node) startRuleSync(ctx context.Context, p *nodeParts) error {
	syncer, err := rulesync.Start(ctx, n.db, n.engine, rulesync.Options{
		Initial: p.initial, InitialComment: "COUNTERSIGN_RULES " + n.cfg.RulesFile, Log: p.log, Observer: p.metrics,
		OnSwap: func(v int64, name, _ string) { p.metrics.ActiveRules(strconv.FormatInt(v, 10), name) },
	})
	if err != nil {
		return fmt.Errorf("rules: %w", err)
	}
	p.syncer = syncer
	return nil
}

// buildService makes the protocol service with its dependencies.
func (n *node) buildService(p *nodeParts) {
	cfg := n.cfg
	minter := &token.Minter{Issuer: cfg.Issuer, Keys: n.keys.Get, AccessTTL: cfg.AccessTokenTTL, IDTTL: cfg.IDTokenTTL, Now: p.now}
	n.pusher = &ciba.DevicePusher{Pusher: &notify.Pusher{Keys: p.vapid, Subscriber: cfg.VAPIDSubject,
		Client: p.policy.Client(10 * time.Second), Now: p.now}}
	n.service = ciba.New(ciba.Config{
		Issuer: cfg.Issuer, DefaultAudience: cfg.DefaultAudience, DefaultExpiry: cfg.DefaultExpiry, MaxExpiry: cfg.MaxExpiry, PollInterval: cfg.PollInterval,
		MandateMaxValidity: cfg.MandateMaxValidity,
		Limits: store.Limits{PendingPerUser: cfg.MaxPendingPerUser, PendingPerAgentUser: cfg.MaxPendingPerAgent,
			PushesPerMinute: cfg.MaxPushesPerMinute},
		Dev: cfg.Dev,
	}, n.db, n.engine, minter,
		ciba.WithLogger(p.log), ciba.WithClock(p.now), ciba.WithDPoP(p.dpop), ciba.WithDevices(n.pusher),
		ciba.WithFailures(p.metrics), ciba.WithObserver(p.syncer))
	// The pusher reads the service's devices; the service pushes through it.
	n.pusher.Service = n.service
}

// startBackground starts the key and client watchers, the outbox worker
// (ping/push callbacks and expiry, on every node) and audit retention.
func (n *node) startBackground(ctx context.Context, p *nodeParts) {
	go n.keys.Watch(ctx, 10*time.Second, n.cfg.KeyRotation)
	go n.service.WatchClients(ctx)
	go n.service.SyncRates(ctx, n.cfg.rateLimits())
	host, _ := os.Hostname()
	n.worker = &ciba.Worker{Service: n.service, Consumer: host + "-" + store.NewID()[:8],
		Callback: &notify.Callback{Client: p.policy.Client(10 * time.Second), Now: p.now},
		PrivateCallback: &notify.Callback{Client: notify.EndpointPolicy{AllowHTTP: n.cfg.Dev, AllowPrivate: true}.Client(10 * time.Second),
			Now: p.now}}
	wctx, stopWorker := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := n.worker.Run(wctx); err != nil && wctx.Err() == nil {
			p.log.Error("outbox worker stopped", "err", err)
		}
	}()
	n.stopWorker = func() { stopWorker(); <-done }
	if n.cfg.AuditRetention > 0 {
		ret := &ciba.Retention{Service: n.service, Keep: n.cfg.AuditRetention, Dir: n.cfg.AuditExportDir}
		go ret.Run(wctx)
	}
}

// newHandler is the node's HTTP API.
func (n *node) newHandler(p *nodeParts) http.Handler {
	cfg := n.cfg
	n.metrics = server.MetricsHandler(p.metrics.Handler(), cfg.MetricsToken)
	return server.New(server.Deps{
		Service: n.service, Admin: &admin.Service{DB: n.db, Dev: cfg.Dev, Now: p.now, ClientChanged: n.service.ForgetClient},
		Keys: n.keys.Get, AdminToken: cfg.AdminToken, Log: p.log, Metrics: p.metrics,
		Ready: func(ctx context.Context) error {
			if err := n.db.Ping(ctx); err != nil {
				return err
			}
			return p.syncer.Ready()
		},
		RulesVersion: p.syncer.RulesVersion,
		Rules:        &admin.Rules{DB: n.db, AdminName: cfg.AdminName, Applier: p.syncer},
		VAPIDPublic:  p.vapid.Public, RequestTimeout: cfg.RequestTimeout,
		RateLimits: cfg.rateLimits(), MetricsToken: cfg.MetricsToken, MetricsElsewhere: cfg.MetricsListen != "",
	})
}

func newLogger(level string, w io.Writer) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}

func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cfg, err := parseConfig(args, getenv, stderr)
	if err != nil {
		if errors.Is(err, errHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "countersign serve: %v\n", err)
		return 2
	}
	log := newLogger(cfg.LogLevel, stderr)
	if getenv("GOGC") == "" {
		// A request allocates much and keeps little: the collector runs
		// at three times the live heap (a few tens of MB) rather than at
		// twice, for less CPU per request. GOGC overrides it.
		debug.SetGCPercent(200)
	}
	for _, w := range unknownEnv(os.Environ(), knownEnv()) {
		log.Warn("unknown environment variable ignored", "name", w.Name, "did_you_mean", w.Closest)
	}
	// Bind before anything else: a busy port fails here, before an admin
	// token is generated and printed for a server that never runs.
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		fmt.Fprintf(stderr, "countersign serve: %v\n", err)
		return 1
	}
	defer ln.Close()
	if cfg.Issuer == "" {
		cfg.Issuer = defaultIssuer(ln.Addr().String()) // with :0, the port actually bound
	}
	n, err := newNode(ctx, cfg, log, stdout, time.Now)
	if err != nil {
		fmt.Fprintf(stderr, "countersign serve: %v\n", err)
		return 1
	}
	defer n.close()
	stopMetrics, _, err := cfg.serveMetrics(n.metrics)
	if err != nil {
		fmt.Fprintf(stderr, "countersign serve: %v\n", err)
		return 1
	}
	defer stopMetrics()
	stopPprof, _, err := cfg.servePprof()
	if err != nil {
		fmt.Fprintf(stderr, "countersign serve: %v\n", err)
		return 1
	}
	defer stopPprof()
	hs := cfg.httpServer(n.handler)
	fmt.Fprintf(stdout, "Countersign listening on http://%s (issuer %s)\n", ln.Addr(), cfg.Issuer)
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		fmt.Fprintf(stderr, "countersign serve: %v\n", err)
		return 1
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		fmt.Fprintf(stderr, "countersign serve: shutdown: %v\n", err)
		return 1
	}
	return 0
}
