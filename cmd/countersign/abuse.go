package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/countersign/countersign/ciba/server"
)

// Abuse is the configuration of the limits on what one caller can cost:
// request rates shared by all nodes, the HTTP server's timeouts against
// slow clients, and who may read /metrics.
type Abuse struct {
	RateLimitPerIP     int
	RateLimitPerClient int
	RateLimitWindow    time.Duration
	RateLimitSync      time.Duration
	ReadHeaderTimeout  time.Duration
	ReadTimeout        time.Duration
	WriteTimeout       time.Duration
	IdleTimeout        time.Duration
	MaxHeaderBytes     int
	MetricsListen      string
	MetricsToken       string
}

func (c *Config) abuseDefs() []flagDef {
	a := &c.Abuse
	return []flagDef{
		{name: "rate-limit-per-ip", env: "COUNTERSIGN_RATE_LIMIT_PER_IP", num: &a.RateLimitPerIP, def: "3000", help: "requests per window from one peer address, counted in Redis across all nodes; past it 429 slow_down with Retry-After (0: no limit)"},
		{name: "rate-limit-per-client", env: "COUNTERSIGN_RATE_LIMIT_PER_CLIENT", num: &a.RateLimitPerClient, def: "6000", help: "requests per window naming one client_id, across all nodes; past it 429 slow_down with Retry-After (0: no limit)"},
		{name: "rate-limit-window", env: "COUNTERSIGN_RATE_LIMIT_WINDOW", dur: &a.RateLimitWindow, def: "1m", help: "the fixed window of the request rate limits"},
		{name: "rate-limit-sync", env: "COUNTERSIGN_RATE_LIMIT_SYNC", dur: &a.RateLimitSync, def: "100ms", help: "how often a node adds its request counts to the shared ones in Redis (0: every request, one Redis round trip each)"},
		{name: "http-read-header-timeout", env: "COUNTERSIGN_HTTP_READ_HEADER_TIMEOUT", dur: &a.ReadHeaderTimeout, def: "10s", help: "time a client has to send the request headers (slow-loris)"},
		{name: "http-read-timeout", env: "COUNTERSIGN_HTTP_READ_TIMEOUT", dur: &a.ReadTimeout, def: "30s", help: "time a client has to send the whole request"},
		{name: "http-write-timeout", env: "COUNTERSIGN_HTTP_WRITE_TIMEOUT", dur: &a.WriteTimeout, def: "30s", help: "time to answer a request, from the end of its headers; must exceed --request-timeout"},
		{name: "http-idle-timeout", env: "COUNTERSIGN_HTTP_IDLE_TIMEOUT", dur: &a.IdleTimeout, def: "2m", help: "how long an idle keep-alive connection stays open"},
		{name: "http-max-header-bytes", env: "COUNTERSIGN_HTTP_MAX_HEADER_BYTES", num: &a.MaxHeaderBytes, def: "32768", help: "largest request header block accepted (431 beyond)"},
		{name: "metrics-listen", env: "COUNTERSIGN_METRICS_LISTEN", str: &a.MetricsListen, help: "serve /metrics on this address only, not on --listen (empty: on --listen)"},
		{name: "metrics-token", env: "COUNTERSIGN_METRICS_TOKEN", str: &a.MetricsToken, secret: true, help: "bearer token /metrics requires (empty: none)"},
	}
}

func (a *Abuse) validate(requestTimeout time.Duration) []error {
	var errs []error
	if a.RateLimitPerIP < 0 || a.RateLimitPerClient < 0 {
		errs = append(errs, errors.New("rate-limit-per-ip and rate-limit-per-client must not be negative"))
	}
	if a.RateLimitWindow < time.Second || a.RateLimitWindow > time.Hour {
		errs = append(errs, errors.New("rate-limit-window must be between 1s and 1h"))
	}
	if a.RateLimitSync < 0 || a.RateLimitSync > 10*time.Second {
		errs = append(errs, errors.New("rate-limit-sync must be between 0 (every request) and 10s"))
	}
	for name, d := range map[string]time.Duration{"http-read-header-timeout": a.ReadHeaderTimeout, "http-read-timeout": a.ReadTimeout,
		"http-write-timeout": a.WriteTimeout, "http-idle-timeout": a.IdleTimeout} {
		if d < 100*time.Millisecond || d > time.Hour {
			errs = append(errs, fmt.Errorf("%s must be between 100ms and 1h", name))
		}
	}
	if a.WriteTimeout <= requestTimeout {
		// A request's own deadline must pass first, so that it ends with
		// a 503 rather than a connection cut mid-answer.
		errs = append(errs, errors.New("http-write-timeout must exceed request-timeout"))
	}
	if a.MaxHeaderBytes < 4096 || a.MaxHeaderBytes > 1<<20 {
		errs = append(errs, errors.New("http-max-header-bytes must be between 4096 and 1048576"))
	}
	if a.MetricsListen != "" {
		if _, _, err := net.SplitHostPort(a.MetricsListen); err != nil {
			errs = append(errs, fmt.Errorf("metrics-listen: %v", err))
		}
	}
	if a.MetricsToken != "" && len(a.MetricsToken) < 16 {
		errs = append(errs, errors.New("metrics-token must be at least 16 characters"))
	}
	return errs
}

func (a *Abuse) rateLimits() server.RateLimits {
	return server.RateLimits{PerIP: a.RateLimitPerIP, PerClient: a.RateLimitPerClient, Window: a.RateLimitWindow,
		Sync: a.RateLimitSync}
}

// httpServer is the server of a listener, with the timeouts that cut off
// a client sending or reading slowly.
func (a *Abuse) httpServer(h http.Handler) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: a.ReadHeaderTimeout, ReadTimeout: a.ReadTimeout,
		WriteTimeout: a.WriteTimeout, IdleTimeout: a.IdleTimeout, MaxHeaderBytes: a.MaxHeaderBytes}
}

// serveMetrics serves h on --metrics-listen until the returned stop is
// called; with no such address it does nothing.
func (a *Abuse) serveMetrics(h http.Handler) (stop func(), addr string, err error) {
	if a.MetricsListen == "" {
		return func() {}, "", nil
	}
	ln, err := net.Listen("tcp", a.MetricsListen)
	if err != nil {
		return nil, "", fmt.Errorf("metrics-listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	hs := a.httpServer(mux)
	go func() { _ = hs.Serve(ln) }()
	return func() { _ = hs.Close() }, ln.Addr().String(), nil
}
