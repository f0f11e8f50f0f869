package server

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/countersign/countersign/ciba"
	"github.com/countersign/countersign/ciba/oauth"
)

// RateLimits are the shared request rate limits (ciba.RateLimits).
type RateLimits = ciba.RateLimits

// maxRateID bounds a claimed client id used as a counter's name.
const maxRateID = 256

// rateLimit counts the request under its peer address and the client id
// it claims, in one Redis round trip, and answers 429 slow_down with
// Retry-After past either limit. Cheap reads that a resource server or a
// probe makes often are not counted.
func (s *srv) rateLimit(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if !s.RateLimits.Enabled() || unmetered(c.Request()) {
			return next(c)
		}
		client, err := claimedClient(c.Request())
		if err != nil {
			return err
		}
		// The peer address, never X-Forwarded-For: a header a client
		// writes would let it choose its own counter.
		at, err := s.Service.Admit(c.Request().Context(), s.RateLimits, peerIP(c.Request()), client)
		if err != nil {
			return err
		}
		err = next(c)
		if client != "" && clientRefused(c, err) {
			s.Service.Refund(c.Request().Context(), s.RateLimits, client, at)
		}
		return err
	}
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
