package ciba

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"time"

	"github.com/countersign/countersign/ciba/clientauth"
	"github.com/countersign/countersign/ciba/dpop"
	"github.com/countersign/countersign/ciba/store"
	"github.com/countersign/countersign/ciba/token"
	"github.com/countersign/countersign/risk"
	"github.com/countersign/countersign/rules"
)

// Config holds the protocol settings of a server node.
type Config struct {
	Issuer          string
	DefaultExpiry   time.Duration // requested_expiry when none is sent (300 s)
	MaxExpiry       time.Duration // requested_expiry is clamped to this (1800 s)
	PollInterval    int           // seconds, for device-pending requests (5)
	DefaultAudience string        // access token aud without locations (the issuer)
	Limits          store.Limits  // push-bombing caps
	// MandateMaxValidity bounds how far ahead an intent mandate may end
	// (DefaultMandateMaxValidity when 0).
	MandateMaxValidity time.Duration
	Dev                bool
}

// Observer receives decision outcomes for metrics. It may be nil.
type Observer interface {
	Decision(d risk.Decision)
}

// Service is one node's protocol engine.
type Service struct {
	cfg    Config
	db     *store.DB
	engine *risk.Engine
	tokens *token.Minter
	auth   *clientauth.Verifier
	// Now is the clock that decides expiry.
	Now      func() time.Time
	Log      *slog.Logger
	Observer Observer
	// Devices is told about requests that wait for the user's phone,
	// through the outbox. It may be nil (requests then wait for a device
	// to look).
	Devices DeviceNotifier
	// DPoP verifies proofs at /token (RFC 9449 §5).
	DPoP *dpop.Verifier
	// Failures counts failures before the caller is identified. It may
	// be nil.
	Failures AuthFailures

	clients   clientCache
	rates     rateCounts
	failLog   limiter // WARN lines of unidentified callers
	failAudit limiter // audited failures per registered client
}

// DeviceNotifier sends a pending request to the user's devices; the
// outbox worker calls it for the entry stored with the request.
type DeviceNotifier interface {
	// PushDevices makes one attempt to each of the user's devices (only
	// those listed, when only is not nil) and returns the devices to try
	// again and the least wait before that.
	PushDevices(ctx context.Context, r *store.Request, only []string) (again []string, wait time.Duration)
}

// Option sets one of a Service's dependencies at construction.
type Option func(*Service)

// WithDPoP replaces the default DPoP verifier (for nonces, RFC 9449 §8).
func WithDPoP(v *dpop.Verifier) Option { return func(s *Service) { s.DPoP = v } }

// WithClock sets the clock that decides expiry (default time.Now).
func WithClock(now func() time.Time) Option { return func(s *Service) { s.Now = now } }

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(s *Service) { s.Log = l } }

// WithObserver sets who hears decision outcomes (default none).
func WithObserver(o Observer) Option { return func(s *Service) { s.Observer = o } }

// WithDevices sets who pushes pending requests to the user's phones
// (default none: requests wait for a device to look).
func WithDevices(d DeviceNotifier) Option { return func(s *Service) { s.Devices = d } }

// WithFailures sets the counter of failures before the caller is
// identified (default none).
func WithFailures(f AuthFailures) Option { return func(s *Service) { s.Failures = f } }

// New returns a Service whose every dependency works: what opts do not
// set gets a default (a DPoP verifier with the default algorithms and
// replay protection in db, the wall clock, the default logger).
func New(cfg Config, db *store.DB, engine *risk.Engine, tokens *token.Minter, opts ...Option) *Service {
	if cfg.DefaultExpiry == 0 {
		cfg.DefaultExpiry = 300 * time.Second
	}
	if cfg.MaxExpiry == 0 {
		cfg.MaxExpiry = 1800 * time.Second
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 5
	}
	if cfg.DefaultAudience == "" {
		cfg.DefaultAudience = cfg.Issuer
	}
	s := &Service{cfg: cfg, db: db, engine: engine, tokens: tokens, Now: time.Now, Log: slog.Default()}
	now := func() time.Time { return s.Now() }
	s.auth = &clientauth.Verifier{Issuer: cfg.Issuer, Now: now, Replay: db}
	s.DPoP = &dpop.Verifier{Algs: dpop.DefaultAlgs, IATWindow: time.Minute, Now: now, Replay: db}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Config returns the service's configuration.
func (s *Service) Config() Config { return s.cfg }

// SignalReader adapts the store to the risk engine.
type SignalReader struct{ DB *store.DB }

// prefetched carries signals read together with the client and the user
// at /bc-authorize, so that the risk engine does not read them again.
type prefetched struct {
	client, user string
	names        []string
	signals      store.Signals
}

type prefetchKey struct{}

func withPrefetched(ctx context.Context, p *prefetched) context.Context {
	return context.WithValue(ctx, prefetchKey{}, p)
}

// ReadSignals implements risk.SignalReader: it serves the signals already
// read for this request when they cover what the rules ask, and reads
// Redis otherwise (a ruleset swapped in between, a shadow ruleset).
func (r SignalReader) ReadSignals(ctx context.Context, q risk.SignalQuery) (rules.Signals, error) {
	var s store.Signals
	if p, ok := ctx.Value(prefetchKey{}).(*prefetched); ok && p.client == q.ClientID && p.user == q.UserID && covers(p.names, q.Names) {
		s = p.signals
	} else {
		var err error
		if s, err = r.DB.ReadSignals(ctx, q.ClientID, q.UserID, q.Names, q.Now); err != nil {
			return rules.Signals{}, err
		}
	}
	return rules.Signals{
		AgentRequests1h:     s.AgentRequests1h,
		AgentUserRequests1h: s.AgentUserRequests1h,
		UserPending:         s.UserPending,
		AgentUserDenials24h: s.AgentUserDenials24h,
		UserSpend24h:        s.UserSpend24h,
		AgentUserSpend24h:   s.AgentUserSpend24h,
		FirstTime:           s.FirstTime,
	}, nil
}

func covers(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

// Authenticate verifies a client's credentials at endpoint and returns
// its record.
func (s *Service) Authenticate(ctx context.Context, c clientauth.Credentials, endpoint string) (*store.Client, error) {
	cl, err := s.client(ctx, c.ClientID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	return s.verifyClient(ctx, c, cl, endpoint)
}

// verifyClient verifies credentials against a client record already read
// (nil: no such client).
func (s *Service) verifyClient(ctx context.Context, c clientauth.Credentials, cl *store.Client, endpoint string) (*store.Client, error) {
	var reg *clientauth.Registered
	if cl != nil {
		reg = &clientauth.Registered{ID: cl.ID, Method: cl.AuthMethod, SecretHash: cl.SecretHash, JWKS: cl.JWKS, Disabled: cl.Disabled}
	}
	if err := s.auth.Verify(ctx, c, reg, endpoint); err != nil {
		return nil, clientAuthFailure(err, c.ClientID, c.Method, cl)
	}
	return cl, nil
}

func hasGrant(c *store.Client, grant string) bool {
	for _, g := range c.GrantTypes {
		if g == grant {
			return true
		}
	}
	return false
}
