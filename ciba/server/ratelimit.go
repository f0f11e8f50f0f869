package server

import (
	"bytes"
	"context"
	"errors"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

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

func (l RateLimits) enabled() bool { return l.Window > 0 && (l.PerIP > 0 || l.PerClient > 0) }

// maxRateID bounds a claimed client id used as a counter's name.
const maxRateID = 256

// rateLimit counts the request under its peer address and the client id
// it claims, in one Redis round trip, and answers 429 slow_down with
// Retry-After past either limit. Cheap reads that a resource server or a
// probe makes often are not counted.
func (s *srv) rateLimit(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if !s.RateLimits.enabled() || s.DB == nil || unmetered(c.Request()) {
			return next(c)
		}
		var keys []store.RateKey
		if s.RateLimits.PerIP > 0 {
			// The peer address, never X-Forwarded-For: a header a client
			// writes would let it choose its own counter.
			keys = append(keys, store.RateKey{Kind: "ip", ID: peerIP(c.Request())})
		}
		client, err := claimedClient(c.Request())
		if err != nil {
			return err
		}
		if s.RateLimits.PerClient > 0 && client != "" {
			keys = append(keys, store.RateKey{Kind: "client", ID: client})
		}
		if len(keys) == 0 {
			return next(c)
		}
		at := s.DB.Now()
		counts, left, err := s.DB.Hit(c.Request().Context(), s.RateLimits.Window, keys...)
		if err != nil {
			return err
		}
		for i, k := range keys {
			limit := s.RateLimits.PerIP
			if k.Kind == "client" {
				limit = s.RateLimits.PerClient
			}
			if counts[i] > int64(limit) {
				return tooMany(k.Kind, left)
			}
		}
		err = next(c)
		if client != "" && s.RateLimits.PerClient > 0 && clientRefused(c, err) {
			// Someone else naming this client must not spend its budget.
			_ = s.DB.Unhit(context.WithoutCancel(c.Request().Context()), s.RateLimits.Window, at, store.RateKey{Kind: "client", ID: client})
		}
		return err
	}
}

func tooMany(kind string, left time.Duration) error {
	secs := int((left + time.Second - 1) / time.Second)
	who := "this address"
	if kind == "client" {
		who = "this client"
	}
	// docs/api.md: 429 slow_down with Retry-After in seconds (RFC 9110 §10.2.3).
	return oauth.New(oauth.SlowDown, "too many requests from %s; retry later", who).WithStatus(http.StatusTooManyRequests).
		WithHeader("Retry-After", strconv.Itoa(max(secs, 1)))
}

// clientRefused reports an answer of invalid_client: the caller did not
// authenticate as the client it named.
func clientRefused(c echo.Context, err error) bool {
	var oe *oauth.Error
	if errors.As(err, &oe) {
		return oe.Code == oauth.InvalidClient
	}
	return err == nil && c.Response().Status == http.StatusUnauthorized
}

func unmetered(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	p := r.URL.Path
	return p == "/healthz" || p == "/readyz" || p == "/metrics" || p == "/jwks.json" || p == "/app" ||
		strings.HasPrefix(p, "/.well-known/") || strings.HasPrefix(p, "/app/")
}

func peerIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// claimedClient is the client id a request names: in HTTP Basic or in a
// form's client_id (RFC 6749 §2.3.1). A form body is read and put back.
func claimedClient(r *http.Request) (string, error) {
	id := ""
	if user, _, ok := r.BasicAuth(); ok {
		id, _ = url.QueryUnescape(user)
	} else if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct == "application/x-www-form-urlencoded" && r.Body != nil {
		b, err := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(b))
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return "", oauth.New(oauth.RequestEntityTooLarge, "request body over 64 KiB")
		}
		if f, err := url.ParseQuery(string(b)); err == nil {
			id = f.Get("client_id")
		}
	}
	if len(id) > maxRateID {
		return "", nil
	}
	return id, nil
}
