package ciba

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/countersign/countersign/ciba/oauth"
	"github.com/countersign/countersign/ciba/store"
)

// RateLimits are the request rate limits shared by every node through
// Redis: requests per Window from one IP address and for one client id.
// 0 disables a limit.
type RateLimits struct {
	PerIP     int
	PerClient int
	Window    time.Duration
}

// Enabled reports whether any limit is on.
func (l RateLimits) Enabled() bool { return l.Window > 0 && (l.PerIP > 0 || l.PerClient > 0) }

// Admit counts one request from ip naming client ("" for none) in one
// Redis round trip, and refuses it with 429 slow_down and Retry-After past
// either limit. The time it returns is the request's window, for Refund.
func (s *Service) Admit(ctx context.Context, l RateLimits, ip, client string) (time.Time, error) {
	var keys []store.RateKey
	if l.PerIP > 0 {
		keys = append(keys, store.RateKey{Kind: "ip", ID: ip})
	}
	if l.PerClient > 0 && client != "" {
		keys = append(keys, store.RateKey{Kind: "client", ID: client})
	}
	at := s.db.Now()
	if len(keys) == 0 {
		return at, nil
	}
	counts, left, err := s.db.Hit(ctx, l.Window, keys...)
	if err != nil {
		return at, err
	}
	for i, k := range keys {
		limit := l.PerIP
		if k.Kind == "client" {
			limit = l.PerClient
		}
		if counts[i] > int64(limit) {
			return at, tooMany(k.Kind, left)
		}
	}
	return at, nil
}

// Refund takes back a request counted for client at at: someone who named
// the client without its credentials must not spend its budget.
func (s *Service) Refund(ctx context.Context, l RateLimits, client string, at time.Time) {
	if l.PerClient > 0 && client != "" {
		_ = s.db.Unhit(context.WithoutCancel(ctx), l.Window, at, store.RateKey{Kind: "client", ID: client})
	}
}

func tooMany(kind string, left time.Duration) error {
	secs := int((left + time.Second - 1) / time.Second)
	who := "this address"
	if kind == "client" {
		who = "this client"
	}
	// 429 slow_down with Retry-After in seconds (RFC 9110 §10.2.3).
	return oauth.New(oauth.SlowDown, "too many requests from %s; retry later", who).WithStatus(http.StatusTooManyRequests).
		WithHeader("Retry-After", strconv.Itoa(max(secs, 1)))
}
