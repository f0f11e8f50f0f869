package server

import (
	"encoding/json"
	"mime"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/countersign/countersign/ciba"
	"github.com/countersign/countersign/ciba/clientauth"
	"github.com/countersign/countersign/ciba/oauth"
)

// The AuthZEN Authorization API 1.0 routes: the decision point for
// gateways and tool servers (the logic is ciba.Service.Evaluate).
func (s *srv) authzenRoutes(e *echo.Echo) {
	e.GET("/.well-known/authzen-configuration", s.authzenConfiguration)
	e.POST("/access/v1/evaluation", s.evaluation)
	e.POST("/access/v1/evaluations", s.evaluations)
}

// authzenConfiguration is AuthZEN 1.0 §"Policy Decision Point Metadata".
func (s *srv) authzenConfiguration(c echo.Context) error {
	iss := strings.TrimRight(s.Service.Config().Issuer, "/")
	return c.JSON(200, map[string]any{
		"policy_decision_point":       iss,
		"access_evaluation_endpoint":  iss + "/access/v1/evaluation",
		"access_evaluations_endpoint": iss + "/access/v1/evaluations",
	})
}

func (s *srv) evaluation(c echo.Context) error {
	in, err := s.evaluationInput(c)
	if err != nil {
		return err
	}
	out, err := s.Service.Evaluate(c.Request().Context(), in)
	if err != nil {
		return err
	}
	return c.JSON(200, out)
}

func (s *srv) evaluations(c echo.Context) error {
	in, err := s.evaluationInput(c)
	if err != nil {
		return err
	}
	out, err := s.Service.EvaluateBatch(c.Request().Context(), in)
	if err != nil {
		return err
	}
	return c.JSON(200, out)
}

// evaluationInput reads a JSON evaluation request and the PEP's
// credentials: HTTP Basic (client_secret_basic), or client_id with
// client_secret or client_assertion members of the JSON body (the
// client_secret_post and private_key_jwt of /introspect; AuthZEN PDPs
// ignore members they do not know).
func (s *srv) evaluationInput(c echo.Context) (ciba.EvaluationInput, error) {
	// AuthZEN 1.0 §"Request Identification": echo the PEP's X-Request-ID.
	if id := c.Request().Header.Get("X-Request-ID"); id != "" && len(id) <= 256 {
		c.Response().Header().Set("X-Request-ID", id)
	}
	// AuthZEN 1.0 §"HTTPS JSON Binding": the body is application/json.
	if mt, _, err := mime.ParseMediaType(c.Request().Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return ciba.EvaluationInput{}, oauth.New(oauth.InvalidRequest, "the body must be application/json")
	}
	body, err := readBody(c)
	if err != nil {
		return ciba.EvaluationInput{}, err
	}
	form, err := bodyCredentials(body)
	if err != nil {
		return ciba.EvaluationInput{}, err
	}
	user, pass, hasBasic := c.Request().BasicAuth()
	creds, err := clientauth.Parse(user, pass, hasBasic, form)
	if err != nil {
		return ciba.EvaluationInput{}, err
	}
	return ciba.EvaluationInput{Credentials: creds, Body: body, Endpoint: endpoint(c, s.Service.Config().Issuer),
		IP: c.RealIP(), UserAgent: c.Request().UserAgent()}, nil
}

// bodyCredentials takes the client authentication members from a JSON
// body, as a form for clientauth.Parse.
func bodyCredentials(body []byte) (url.Values, error) {
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, oauth.New(oauth.InvalidRequest, "the body must be a JSON object")
	}
	form := url.Values{}
	for _, k := range []string{"client_id", "client_secret", "client_assertion", "client_assertion_type"} {
		switch v := m[k].(type) {
		case nil:
		case string:
			form.Set(k, v)
		default:
			return nil, oauth.New(oauth.InvalidRequest, "%s must be a string", k)
		}
	}
	return form, nil
}
