package server

import (
	"crypto/subtle"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
)

// authParam returns the credentials of an Authorization value in the
// given scheme. RFC 9110 §11.1: the scheme name is case-insensitive
// ("bearer", "BEARER" and "Bearer" are one scheme, RFC 6750 §2.1).
func authParam(authorization, scheme string) (string, bool) {
	name, cred, ok := strings.Cut(authorization, " ")
	if !ok || !strings.EqualFold(name, scheme) {
		return "", false
	}
	return strings.TrimLeft(cred, " "), true
}

// canonicalDevice rewrites a Device authorization in any case of the
// scheme name to the canonical "Device <jwt>" the service parses.
func canonicalDevice(authorization string) string {
	if tok, ok := authParam(authorization, "Device"); ok {
		return "Device " + tok
	}
	return authorization
}

// nosniff keeps browsers from reading an answer as anything but its
// declared type, on every route.
func nosniff(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		c.Response().Header().Set("X-Content-Type-Options", "nosniff")
		return next(c)
	}
}

// MetricsHandler serves h, behind a bearer token when token is not
// empty (compared in constant time).
func MetricsHandler(h http.Handler, token string) http.Handler {
	if token == "" {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := authParam(r.Header.Get("Authorization"), "Bearer")
		if !ok || subtle.ConstantTimeCompare([]byte(tok), []byte(token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="countersign-metrics"`)
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":"invalid_token","error_description":"a valid metrics bearer token is required"}` + "\n"))
			return
		}
		h.ServeHTTP(w, r)
	})
}
