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
	keys    *ciba.KeyRing
	engine  *risk.Engine
	pusher  *ciba.DevicePusher
	worker  *ciba.Worker
	// stopWorker ends the outbox worker and waits for it.
	stopWorker func()
	close      func()
}

// newNode wires a node from its configuration.
func newNode(ctx context.Context, cfg *Config, log *slog.Logger, stdout io.Writer, now func() time.Time) (*node, error) {
	if cfg.Issuer == "" {
		return nil, errors.New("no issuer: serve derives it from the bound address before starting a node")
	}
	n := &node{cfg: cfg}
	routeRedisLog(log)
	var rdb redis.UniversalClient
	// The node's background work (rules, keys, outbox) ends with the node,
	// before its Redis connection closes.
	ctx, cancelNode := context.WithCancel(ctx)
	closers := []func(){cancelNode}
	if cfg.RedisURL == "" {
		m := miniredis.NewMiniRedis()
		if err := m.StartAddr("127.0.0.1:0"); err != nil {
			return nil, err
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
		closers = append(closers, cancel, m.Close)
		rdb = redis.NewUniversalClient(withDeadlines(&redis.UniversalOptions{Addrs: []string{m.Addr()}}, cfg.RequestTimeout))
		log.Warn("EMBEDDED STORE: no --redis-url given; all state lives in this process's memory only and is lost on exit. Use COUNTERSIGN_REDIS_URL for anything but a trial.")
		if cfg.AdminToken == "" {
			b := make([]byte, 24)
			_, _ = rand.Read(b)
			cfg.AdminToken = base64.RawURLEncoding.EncodeToString(b)
			fmt.Fprintf(stdout, "Admin token (generated for this run): %s\n  export COUNTERSIGN_ADMIN_TOKEN=%s\n", cfg.AdminToken, cfg.AdminToken)
		}
	} else {
		o, err := redisOptions(cfg.RedisURL)
		if err != nil {
			return nil, err
		}
		rdb = redis.NewUniversalClient(withDeadlines(o, cfg.RequestTimeout))
	}
	closers = append(closers, func() { rdb.Close() })
	n.close = func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	n.db = store.Open(rdb, cfg.KeyPrefix)
	n.db.Now = now
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := n.db.Ping(pctx); err != nil {
		n.close()
		return nil, fmt.Errorf("redis: %w", err)
	}
	keys, err := ciba.LoadKeys(pctx, n.db)
	if err != nil {
		n.close()
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	n.keys = keys
	rs := rules.Default()
	var initial []byte
	if cfg.RulesFile != "" {
		src, err := os.ReadFile(cfg.RulesFile)
		if err != nil {
			n.close()
			return nil, err
		}
		if rs, err = rules.Load(src); err != nil {
			n.close()
			return nil, fmt.Errorf("%s: %w", cfg.RulesFile, err)
		}
		initial = src
	}
	n.engine = risk.NewEngine(ciba.SignalReader{DB: n.db}, rs)
	minter := &token.Minter{Issuer: cfg.Issuer, Keys: keys.Get, AccessTTL: cfg.AccessTokenTTL, IDTTL: cfg.IDTokenTTL, Now: now}
	n.service = ciba.New(ciba.Config{
		Issuer: cfg.Issuer, DefaultAudience: cfg.DefaultAudience, DefaultExpiry: cfg.DefaultExpiry, MaxExpiry: cfg.MaxExpiry, PollInterval: cfg.PollInterval,
		Limits: store.Limits{PendingPerUser: cfg.MaxPendingPerUser, PendingPerAgentUser: cfg.MaxPendingPerAgent,
			PushesPerMinute: cfg.MaxPushesPerMinute},
		Dev: cfg.Dev,
	}, n.db, n.engine, minter)
	n.service.Log = log
	n.service.Now = now
	seed := make([]byte, 32)
	_, _ = rand.Read(seed)
	nonceKey, err := n.db.LoadOrInit(pctx, "dpop-nonce-key", seed)
	if err != nil {
		n.close()
		return nil, fmt.Errorf("DPoP nonce key: %w", err)
	}
	n.service.DPoP = &dpop.Verifier{Algs: dpop.DefaultAlgs, IATWindow: time.Minute, Now: now, Replay: n.db}
	if cfg.DPoPNonce {
		n.service.DPoP.Nonces = &dpop.Nonces{Key: func() []byte { return nonceKey }, Period: 5 * time.Minute, Now: now}
	}
	vapid, err := ciba.LoadVAPID(pctx, n.db)
	if err != nil {
		n.close()
		return nil, fmt.Errorf("VAPID keys: %w", err)
	}
	pol := notify.EndpointPolicy{AllowHTTP: cfg.Dev, AllowPrivate: cfg.Dev}
	n.pusher = &ciba.DevicePusher{Service: n.service, Pusher: &notify.Pusher{Keys: vapid, Subscriber: cfg.VAPIDSubject,
		Client: pol.Client(10 * time.Second), Now: now}}
	n.service.Devices = n.pusher
	metrics := server.NewMetrics()
	n.service.Failures = metrics
	// The active ruleset lives in Redis: every node follows activations
	// and rollbacks (pub/sub plus a periodic check). --rules becomes
	// version 1 only when nothing is active yet.
	syncer, err := rulesync.Start(ctx, n.db, n.engine, rulesync.Options{
		Initial: initial, InitialComment: "COUNTERSIGN_RULES " + cfg.RulesFile, Log: log, Observer: metrics,
		OnSwap: func(v int64, name, _ string) { metrics.ActiveRules(strconv.FormatInt(v, 10), name) },
	})
	if err != nil {
		n.close()
		return nil, fmt.Errorf("rules: %w", err)
	}
	n.service.Observer = syncer
	go keys.Watch(ctx, 10*time.Second, cfg.KeyRotation)
	go n.service.WatchClients(ctx)
	// The outbox worker: ping/push callbacks and expiry, on every node.
	host, _ := os.Hostname()
	n.worker = &ciba.Worker{Service: n.service, Consumer: host + "-" + store.NewID()[:8],
		Callback:        &notify.Callback{Client: pol.Client(10 * time.Second), Now: now},
		PrivateCallback: &notify.Callback{Client: notify.EndpointPolicy{AllowHTTP: cfg.Dev, AllowPrivate: true}.Client(10 * time.Second), Now: now}}
	wctx, stopWorker := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := n.worker.Run(wctx); err != nil && wctx.Err() == nil {
			log.Error("outbox worker stopped", "err", err)
		}
	}()
	n.stopWorker = func() { stopWorker(); <-done }
	if cfg.AuditRetention > 0 {
		ret := &ciba.Retention{Service: n.service, Keep: cfg.AuditRetention, Dir: cfg.AuditExportDir}
		go ret.Run(wctx)
	}
	closers = append(closers, n.stopWorker, cancelNode)
	n.handler = server.New(server.Deps{
		Service: n.service, Admin: &admin.Service{DB: n.db, Dev: cfg.Dev, Now: now, ClientChanged: n.service.ForgetClient}, DB: n.db,
		Keys: keys.Get, AdminToken: cfg.AdminToken, Log: log, Metrics: metrics,
		Ready: func(ctx context.Context) error {
			if err := n.db.Ping(ctx); err != nil {
				return err
			}
			return syncer.Ready()
		},
		RulesVersion: syncer.RulesVersion,
		Rules:        &admin.Rules{DB: n.db, AdminName: cfg.AdminName, Applier: syncer},
		VAPIDPublic:  vapid.Public, RequestTimeout: cfg.RequestTimeout,
	})
	return n, nil
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
	hs := &http.Server{Handler: n.handler, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 32 << 10}
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
