package server

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"runtime/debug"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/countersign/countersign/ciba"
	"github.com/countersign/countersign/ciba/admin"
	"github.com/countersign/countersign/ciba/deviceapp"
	"github.com/countersign/countersign/ciba/oauth"
	"github.com/countersign/countersign/ciba/ratelog"
	"github.com/countersign/countersign/ciba/token"
)

// MaxBody is the largest request body accepted (docs/api.md).
const MaxBody = 64 << 10

// Deps is what the HTTP layer serves.
type Deps struct {
	Service    *ciba.Service
	Admin      *admin.Service
	Keys       func() token.KeySet
	AdminToken string
	Log        *slog.Logger
	Metrics    *Metrics
	// Ready reports whether the node can serve (Redis, rules).
	Ready func(ctx context.Context) error
	// RulesVersion names the active ruleset on this node.
	RulesVersion func() string
	// VAPIDPublic is the server's VAPID public key (enrollment answer).
	VAPIDPublic string
	// Rules serves /admin/rules (nil: not served).
	Rules *admin.Rules
	// RequestTimeout bounds every request, Redis connection set-up
	// included (DefaultRequestTimeout when 0).
	RequestTimeout time.Duration
	// RateLimits are the shared request rate limits (none when zero).
	RateLimits RateLimits
	// MetricsToken, when set, is the bearer token /metrics requires.
	MetricsToken string
	// MetricsElsewhere leaves /metrics off this handler (it has a
	// listener of its own).
	MetricsElsewhere bool
	Extra            []func(e *echo.Echo) // more routes (device app, ...)
}

// DefaultRequestTimeout is the deadline of a request when
// Deps.RequestTimeout is 0.
const DefaultRequestTimeout = 5 * time.Second

// ReadyTimeout bounds /readyz: a probe must learn "not ready" well within
// its own timeout.
const ReadyTimeout = time.Second

type srv struct {
	Deps
	// unavailable logs the 503s of a Redis outage: the first at once, then
	// one line per interval with a count.
	unavailable *ratelog.Failure
	notReady    *ratelog.Failure
}

// New returns the HTTP handler of a node.
func New(d Deps) *echo.Echo {
	if d.Log == nil {
		d.Log = slog.Default()
	}
	if d.RequestTimeout <= 0 {
		d.RequestTimeout = DefaultRequestTimeout
	}
	s := &srv{Deps: d, unavailable: ratelog.New(d.Log, slog.LevelWarn, "request answered 503: store unavailable"),
		notReady: ratelog.New(d.Log, slog.LevelWarn, "not ready")}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.renderError
	e.Use(s.recoverer, s.requestID, s.deadline, s.bodyLimit, s.observe, nosniff, s.rateLimit)

	e.GET("/.well-known/openid-configuration", s.discovery)
	e.GET("/.well-known/oauth-authorization-server", s.discovery)
	e.GET("/jwks.json", s.jwks)
	e.POST("/bc-authorize", s.bcAuthorize)
	e.POST("/token", s.token)
	e.POST("/revoke", s.revoke)
	e.POST("/introspect", s.introspect)
	e.GET("/healthz", func(c echo.Context) error { return c.JSON(200, map[string]string{"status": "ok"}) })
	e.GET("/readyz", s.readyz)
	if d.Metrics != nil && !d.MetricsElsewhere {
		e.GET("/metrics", echo.WrapHandler(MetricsHandler(d.Metrics.Handler(), d.MetricsToken)))
	}
	a := e.Group("/admin", s.adminAuth)
	a.POST("/clients", s.createClient)
	a.GET("/clients", s.listClients)
	a.GET("/clients/:id", s.getClient)
	a.PATCH("/clients/:id", s.patchClient)
	a.DELETE("/clients/:id", s.deleteClient)
	a.POST("/users", s.createUser)
	a.GET("/users", s.listUsers)
	a.GET("/users/:id", s.getUser)
	a.PATCH("/users/:id", s.patchUser)
	a.DELETE("/users/:id", s.deleteUser)
	a.POST("/users/:id/enrollments", s.createEnrollment)
	a.POST("/agents/:client_id/revoke", s.revokeAgent)
	a.GET("/audit", s.audit)
	a.POST("/audit/verify", s.auditVerify)
	if d.Rules != nil {
		s.rulesRoutes(a, d.Rules)
	}
	s.deviceRoutes(e)
	s.mandateRoutes(e, a)
	s.authzenRoutes(e)
	app := echo.WrapHandler(deviceapp.Handler())
	e.GET("/app", app)
	e.Any("/app/*", app)
	for _, f := range d.Extra {
		f(e)
	}
	return e
}

// renderError is the one error renderer.
func (s *srv) renderError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	var oe *oauth.Error
	var he *echo.HTTPError
	switch {
	case errors.As(err, &oe):
	case errors.As(err, &he):
		switch he.Code {
		case http.StatusNotFound:
			oe = oauth.New(oauth.NotFound, "no such endpoint")
		case http.StatusMethodNotAllowed:
			oe = oauth.New(oauth.MethodNotAllowed, "method not allowed")
		case http.StatusRequestEntityTooLarge:
			oe = oauth.New(oauth.RequestEntityTooLarge, "request body over 64 KiB")
		case http.StatusUnauthorized:
			oe = oauth.New(oauth.InvalidToken, "authentication required").WithStatus(401)
		default:
			oe = oauth.New(oauth.InvalidRequest, "%v", he.Message).WithStatus(he.Code)
		}
	case oauth.IsUnavailable(err) || errors.Is(c.Request().Context().Err(), context.DeadlineExceeded):
		// docs/api.md: past the deadline or without Redis the outcome is
		// unknown, so the answer is 503, never 500 nor a guess.
		s.unavailable.Fail(err, "request_id", c.Response().Header().Get(echo.HeaderXRequestID), "path", c.Path())
		oe = oauth.Unavailable()
	default:
		s.Log.Error("request failed", "request_id", c.Response().Header().Get(echo.HeaderXRequestID),
			"path", c.Path(), "err", err)
		oe = oauth.New(oauth.ServerError, "internal error; see the server log for request %s", c.Response().Header().Get(echo.HeaderXRequestID))
	}
	h := c.Response().Header()
	for k, v := range oe.Header {
		h[k] = v
	}
	if oe.Status == http.StatusMethodNotAllowed && h.Get("Allow") == "" {
		h.Set("Allow", allowed(c))
	}
	h.Set("Cache-Control", "no-store")
	body := map[string]any{"error": oe.Code, "error_description": oe.Description}
	for k, v := range oe.Extra {
		body[k] = v
	}
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(oe.Status)
		return
	}
	_ = c.JSON(oe.Status, body)
}

// allowed lists the methods routed for the request's path.
func allowed(c echo.Context) string {
	var ms []string
	for _, r := range c.Echo().Routes() {
		if r.Path == c.Path() || r.Path == c.Request().URL.Path {
			ms = append(ms, r.Method)
		}
	}
	if len(ms) == 0 {
		return "GET, POST"
	}
	return strings.Join(ms, ", ")
}

func (s *srv) recoverer(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			if r := recover(); r != nil {
				s.Log.Error("panic", "request_id", c.Response().Header().Get(echo.HeaderXRequestID), "panic", fmt.Sprint(r),
					"stack", string(debug.Stack()))
				err = fmt.Errorf("panic: %v", r)
			}
		}()
		return next(c)
	}
}

func (s *srv) requestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		c.Response().Header().Set(echo.HeaderXRequestID, ciba.NewID())
		return next(c)
	}
}

// bodyLimit refuses bodies over MaxBody with 413, by Content-Length
// up front and by counting otherwise.
func (s *srv) bodyLimit(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if r.ContentLength > MaxBody {
			return oauth.New(oauth.RequestEntityTooLarge, "request body over 64 KiB")
		}
		r.Body = http.MaxBytesReader(c.Response(), r.Body, MaxBody)
		return next(c)
	}
}

// deadline gives every request its deadline: the Redis client honours
// the context (dial, pool wait, read, write), so a stalled Redis costs a
// request at most RequestTimeout and then a 503.
func (s *srv) deadline(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx, cancel := context.WithTimeout(c.Request().Context(), s.RequestTimeout)
		defer cancel()
		c.SetRequest(c.Request().WithContext(ctx))
		return next(c)
	}
}

func (s *srv) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		if s.Metrics != nil {
			s.Metrics.observeHTTP(c.Path(), c.Request().Method, c.Response().Status, time.Since(start))
		}
		s.Log.Debug("http", "request_id", c.Response().Header().Get(echo.HeaderXRequestID), "method", c.Request().Method,
			"path", c.Path(), "status", c.Response().Status, "ms", time.Since(start).Milliseconds())
		return nil
	}
}

// readForm reads an OAuth endpoint's form body: the content type must be
// form-urlencoded and no parameter may repeat (RFC 6749 §3.1, §3.2).
func readForm(c echo.Context) (url.Values, error) {
	ct, _, _ := mime.ParseMediaType(c.Request().Header.Get("Content-Type"))
	if ct != "application/x-www-form-urlencoded" {
		return nil, oauth.New(oauth.InvalidRequest, "the body must be application/x-www-form-urlencoded")
	}
	b, err := readBody(c)
	if err != nil {
		return nil, err
	}
	form, err := url.ParseQuery(string(b))
	if err != nil {
		return nil, oauth.New(oauth.InvalidRequest, "the body is not valid form encoding")
	}
	for k, v := range form {
		if len(v) > 1 {
			return nil, oauth.New(oauth.InvalidRequest, "parameter %q is repeated", k)
		}
	}
	return form, nil
}

// readBody reads a JSON body of the admin and device APIs.
func readBody(c echo.Context) ([]byte, error) {
	b, err := io.ReadAll(c.Request().Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, oauth.New(oauth.RequestEntityTooLarge, "request body over 64 KiB")
		}
		return nil, oauth.New(oauth.InvalidRequest, "could not read the body")
	}
	return b, nil
}

func noStore(c echo.Context) {
	c.Response().Header().Set("Cache-Control", "no-store")
	c.Response().Header().Set("Pragma", "no-cache")
}

func endpoint(c echo.Context, issuer string) string {
	return strings.TrimRight(issuer, "/") + c.Request().URL.Path
}

// readyz answers within ReadyTimeout; why a node is not ready goes to the
// log, not to whoever probes it.
func (s *srv) readyz(c echo.Context) error {
	if s.Ready != nil {
		ctx, cancel := context.WithTimeout(c.Request().Context(), min(ReadyTimeout, s.RequestTimeout))
		defer cancel()
		if err := s.Ready(ctx); err != nil {
			s.notReady.Fail(err)
			noStore(c)
			c.Response().Header().Set("Retry-After", oauth.RetryAfterUnavailable)
			return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "not ready"})
		}
	}
	s.notReady.OK()
	out := map[string]string{"status": "ready"}
	if s.RulesVersion != nil {
		out["rules_version"] = s.RulesVersion()
	}
	return c.JSON(200, out)
}

// adminAuth checks the admin bearer token in constant time.
func (s *srv) adminAuth(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Request().Header.Get("Authorization")
		tok, ok := authParam(h, "Bearer")
		if !ok || s.AdminToken == "" || subtle.ConstantTimeCompare([]byte(tok), []byte(s.AdminToken)) != 1 {
			s.adminAuthFailed(c, ok)
			return oauth.New(oauth.InvalidToken, "a valid admin bearer token is required").WithStatus(401).
				WithHeader("WWW-Authenticate", `Bearer realm="countersign-admin"`)
		}
		return next(c)
	}
}
