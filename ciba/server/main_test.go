package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"

	"github.com/countersign/countersign/ciba"
	"github.com/countersign/countersign/ciba/admin"
	"github.com/countersign/countersign/ciba/oauth"
	"github.com/countersign/countersign/ciba/store"
	"github.com/countersign/countersign/ciba/store/redistest"
	"github.com/countersign/countersign/ciba/token"
	"github.com/countersign/countersign/risk"
	"github.com/countersign/countersign/rules"
)

const (
	testIssuer     = "http://countersign.test"
	testAdminToken = "admin-token-of-sixteen+"
)

// testServer is the HTTP layer over a real service and a real store on
// miniredis, with a few extra routes that fail in each way the renderer
// knows.
type testServer struct {
	h     http.Handler
	redis *redistest.Server
	admin *admin.Service
}

func newTestServer(t *testing.T) *testServer {
	t.Helper()
	r := redistest.Mini(t)
	// One dial attempt, no retries: an outage is seen at once.
	c := redis.NewClient(&redis.Options{Addr: r.Addr, MaxRetries: -1, DialerRetries: 1, DialerRetryTimeout: time.Millisecond})
	t.Cleanup(func() { c.Close() })
	db := store.Open(c, r.Prefix)
	keys, err := ciba.LoadKeys(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	engine := risk.NewEngine(ciba.SignalReader{DB: db}, rules.Default())
	svc := ciba.New(ciba.Config{Issuer: testIssuer}, db, engine, &token.Minter{Issuer: testIssuer, Keys: keys.Get},
		ciba.WithLogger(log))
	adm := &admin.Service{DB: db, Now: time.Now, ClientChanged: svc.ForgetClient}
	h := New(Deps{Service: svc, Admin: adm, Keys: keys.Get, AdminToken: testAdminToken, Log: log,
		Metrics: NewMetrics(), Extra: []func(*echo.Echo){failingRoutes}})
	return &testServer{h: h, redis: r, admin: adm}
}

// failingRoutes answer with each kind of error a handler may return.
func failingRoutes(e *echo.Echo) {
	e.GET("/test/oauth", func(echo.Context) error {
		return oauth.New(oauth.InvalidGrant, "no such grant").WithHeader("X-Test", "kept")
	})
	e.GET("/test/plain", func(echo.Context) error { return errors.New("boom: secret detail") })
	e.GET("/test/panic", func(echo.Context) error { panic("boom") })
	e.GET("/test/unavailable", func(echo.Context) error { return context.DeadlineExceeded })
	e.GET("/test/echo401", func(echo.Context) error { return echo.ErrUnauthorized })
	e.GET("/test/echo413", func(echo.Context) error { return echo.ErrStatusRequestEntityTooLarge })
	e.GET("/test/echo400", func(echo.Context) error { return echo.NewHTTPError(http.StatusBadRequest, "bad thing") })
}

// do sends one request to the handler.
func (s *testServer) do(method, path, contentType, body string, header ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	s.h.ServeHTTP(rec, req)
	return rec
}
