package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/countersign/countersign/ciba/ratelog"
)

// redisOptions parses the Redis URL forms we document:
//
//	redis://[user:pass@]host:port[/db]           one node (rediss:// for TLS)
//	redis+sentinel://[user:pass@]h1:p,h2:p/master[?db=N]
//	redis+cluster://[user:pass@]h1:p,h2:p        (rediss+cluster:// for TLS)
func redisOptions(raw string) (*redis.UniversalOptions, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	switch u.Scheme {
	case "redis", "rediss":
		o, err := redis.ParseURL(raw)
		if err != nil {
			return nil, err
		}
		return &redis.UniversalOptions{Addrs: []string{o.Addr}, Username: o.Username, Password: o.Password, DB: o.DB, TLSConfig: o.TLSConfig}, nil
	case "redis+sentinel", "redis+cluster", "rediss+cluster":
		addrs := strings.Split(u.Host, ",")
		if len(addrs) == 0 || addrs[0] == "" {
			return nil, fmt.Errorf("no hosts in %s URL", u.Scheme)
		}
		o := &redis.UniversalOptions{Addrs: addrs, Username: u.User.Username()}
		o.Password, _ = u.User.Password()
		if u.Scheme == "redis+sentinel" {
			o.MasterName = strings.Trim(u.Path, "/")
			if o.MasterName == "" {
				return nil, fmt.Errorf("redis+sentinel URL needs /master-name")
			}
			if db := u.Query().Get("db"); db != "" {
				if o.DB, err = strconv.Atoi(db); err != nil {
					return nil, fmt.Errorf("db: %v", err)
				}
			}
		} else {
			o.IsClusterMode = true
		}
		return o, nil
	}
	return nil, fmt.Errorf("unsupported scheme %q", u.Scheme)
}

// withDeadlines bounds every Redis call, for every URL form and the
// embedded store alike: a request's context deadline covers dialling,
// waiting for a pooled connection, writing and reading (docs/api.md: a stalled
// Redis is a 503 within the request deadline, never a hang); work without
// a deadline of its own (background loops) gets d per step. Retries are
// few and quick, so that a refused connection fails well within d.
func withDeadlines(o *redis.UniversalOptions, d time.Duration) *redis.UniversalOptions {
	o.ContextTimeoutEnabled = true
	o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.PoolTimeout = d, d, d, d
	o.DialerRetries = 1
	o.MaxRetries = 2
	o.MinRetryBackoff, o.MaxRetryBackoff = 10*time.Millisecond, 100*time.Millisecond
	return o
}

// redisLog routes go-redis's own log lines (reconnects, pub/sub, pool)
// through slog, so every line of the node is JSON, and rate-limits each
// kind of line as a repeating failure.
type redisLog struct {
	log   *slog.Logger
	mu    sync.Mutex
	kinds map[string]*ratelog.Failure // by format string: a fixed set in go-redis
}

// routeRedisLog makes log the destination of go-redis's log lines (one
// process-wide setting of the library).
func routeRedisLog(log *slog.Logger) {
	redis.SetLogger(&redisLog{log: log.With("component", "go-redis"), kinds: map[string]*ratelog.Failure{}})
}

func (l *redisLog) Printf(_ context.Context, format string, v ...any) {
	l.mu.Lock()
	f := l.kinds[format]
	if f == nil {
		if len(l.kinds) >= 256 {
			clear(l.kinds)
		}
		f = ratelog.New(l.log, slog.LevelWarn, "redis client")
		l.kinds[format] = f
	}
	l.mu.Unlock()
	f.Fail(fmt.Errorf(format, v...))
}
