package server

import (
	"errors"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/countersign/countersign/ciba/oauth"
)

func (m *Metrics) registerAuthFailures() {
	m.authFails = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "countersign_auth_failures_total",
		Help: "Failed authentications before the caller is identified, by endpoint and reason."},
		[]string{"endpoint", "reason"})
	m.reg.MustRegister(m.authFails)
}

// AuthFailure counts a failed authentication of an unidentified caller.
func (m *Metrics) AuthFailure(endpoint, reason string) {
	m.authFails.WithLabelValues(endpoint, reason).Inc()
}

// adminAuthFailed reports a refused admin call: there is no one to audit
// it against, so it is logged (rate-limited) and counted.
func (s *srv) adminAuthFailed(c echo.Context, hadBearer bool) {
	reason := "bad_token"
	if !hadBearer {
		reason = "missing_token"
	}
	if s.Service != nil {
		s.Service.AuthFailed("admin", reason, c.RealIP(), "method", c.Request().Method, "path", c.Path())
	} else if s.Metrics != nil {
		s.Metrics.AuthFailure("admin", reason)
	}
}

// credentialsFailed reports client credentials that do not even parse
// (none, malformed, mismatched): counted and logged, like an unknown client.
func (s *srv) credentialsFailed(c echo.Context, err error) {
	var oe *oauth.Error
	if s.Service == nil || !errors.As(err, &oe) || oe.Code != oauth.InvalidClient {
		return
	}
	endpoint := strings.ReplaceAll(strings.TrimPrefix(c.Path(), "/"), "-", "_")
	s.Service.AuthFailed(endpoint, "malformed_credentials", c.RealIP())
}
