package ciba

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/countersign/countersign/ciba/clientauth"
	"github.com/countersign/countersign/ciba/oauth"
	"github.com/countersign/countersign/ciba/store"
)

// authParams are the authentication request parameters (CIBA Core §7.1).
var authParams = []string{"scope", "client_notification_token", "acr_values", "login_hint_token",
	"id_token_hint", "login_hint", "binding_message", "user_code", "requested_expiry", "authorization_details",
	"mandate_id"}

// MaxRequestObjectLifetime bounds a signed request's exp - iat and
// exp - nbf (FAPI-CIBA §5.2.2: at most 60 minutes).
const MaxRequestObjectLifetime = 60 * time.Minute

func (s *Service) readParams(ctx context.Context, cl *store.Client, form url.Values) (params, error) {
	if ro := form.Get("request"); ro != "" {
		return s.requestObject(ctx, cl, ro)
	}
	// CIBA Core §7.1.1: a client that registered a signing alg must sign.
	if cl.RequestSigningAlg != "" {
		return params{}, oauth.New(oauth.InvalidRequest, "this client must send a signed request object")
	}
	p := params{has: map[string]bool{}}
	for _, k := range authParams {
		if _, ok := form[k]; ok {
			p.has[k] = true
		}
	}
	p.scope = form.Get("scope")
	p.loginHint, p.idTokenHint, p.loginHintToken = form.Get("login_hint"), form.Get("id_token_hint"), form.Get("login_hint_token")
	p.bindingMessage, p.userCode = form.Get("binding_message"), form.Get("user_code")
	p.notificationToken = form.Get("client_notification_token")
	p.acrValues = strings.Fields(form.Get("acr_values"))
	p.requestedExpiry = form.Get("requested_expiry")
	p.details = form.Get("authorization_details")
	p.mandateID = form.Get("mandate_id")
	return p, nil
}

// requestObject verifies a signed authentication request (CIBA Core
// §7.1.1). Every fault is invalid_request (§13).
func (s *Service) requestObject(ctx context.Context, cl *store.Client, ro string) (params, error) {
	claims, err := s.parseRequestObject(cl, ro)
	if err != nil {
		return params{}, err
	}
	exp, err := checkRequestObjectTimes(claims)
	if err != nil {
		return params{}, err
	}
	if err := s.checkRequestObjectJTI(ctx, cl, claims, exp); err != nil {
		return params{}, err
	}
	p, err := paramsOfClaims(claims)
	if err != nil {
		return params{}, badRequestObject("%v", err)
	}
	return p, nil
}

func badRequestObject(format string, args ...any) error {
	return oauth.New(oauth.InvalidRequest, "request object: "+format, args...)
}

// parseRequestObject: CIBA Core §7.1.1, signed with the client's
// registered alg and key, iss the client, aud the issuer, exp required.
func (s *Service) parseRequestObject(cl *store.Client, ro string) (jwt.MapClaims, error) {
	if cl.RequestSigningAlg == "" {
		return nil, badRequestObject("this client has not registered backchannel_authentication_request_signing_alg")
	}
	keys, err := clientauth.ParseJWKS(cl.JWKS)
	if err != nil || len(keys) == 0 {
		return nil, badRequestObject("the client has no usable registered keys")
	}
	claims := jwt.MapClaims{}
	_, err = jwt.ParseWithClaims(ro, claims, keys.Keyfunc(),
		jwt.WithValidMethods([]string{cl.RequestSigningAlg}), jwt.WithTimeFunc(s.Now),
		jwt.WithIssuer(cl.ID), jwt.WithAudience(s.cfg.Issuer), jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(), jwt.WithLeeway(5*time.Second),
		// Numbers stay as the agent wrote them: authorization_details go
		// into the token exactly as signed, not rounded through float64.
		jwt.WithJSONNumber())
	if err != nil {
		return nil, badRequestObject("%s", jwtProblem(err))
	}
	return claims, nil
}

// checkRequestObjectTimes: CIBA Core §7.1.1, iat and nbf are required;
// FAPI-CIBA §5.2.2, exp at most 60 minutes after iat and nbf.
func checkRequestObjectTimes(claims jwt.MapClaims) (time.Time, error) {
	exp, _ := claims.GetExpirationTime()
	iat, _ := claims.GetIssuedAt()
	nbf, _ := claims.GetNotBefore()
	if iat == nil || nbf == nil {
		return time.Time{}, badRequestObject("iat and nbf are required")
	}
	if exp.Sub(iat.Time) > MaxRequestObjectLifetime || exp.Sub(nbf.Time) > MaxRequestObjectLifetime {
		return time.Time{}, badRequestObject("lifetime over %s", MaxRequestObjectLifetime)
	}
	return exp.Time, nil
}

// checkRequestObjectJTI: CIBA Core §7.1.1, jti is required; we use each
// once per client until the object expires.
func (s *Service) checkRequestObjectJTI(ctx context.Context, cl *store.Client, claims jwt.MapClaims, exp time.Time) error {
	jti, _ := claims["jti"].(string)
	if jti == "" {
		return badRequestObject("jti is required")
	}
	fresh, err := s.db.UseOnce(ctx, "request:"+cl.ID, jti, exp)
	if err != nil {
		return err
	}
	if !fresh {
		return badRequestObject("jti was already used")
	}
	return nil
}

// paramsOfClaims reads the authentication request parameters from a
// verified request object's claims.
func paramsOfClaims(claims jwt.MapClaims) (params, error) {
	p := params{has: map[string]bool{}}
	var acr string
	fields := map[string]*string{"scope": &p.scope, "login_hint": &p.loginHint, "id_token_hint": &p.idTokenHint,
		"login_hint_token": &p.loginHintToken, "binding_message": &p.bindingMessage, "user_code": &p.userCode,
		"client_notification_token": &p.notificationToken, "requested_expiry": &p.requestedExpiry,
		"authorization_details": &p.details, "acr_values": &acr, "mandate_id": &p.mandateID}
	for name, dst := range fields {
		v, ok := claims[name]
		if !ok {
			continue
		}
		p.has[name] = true
		s, err := claimString(name, v)
		if err != nil {
			return params{}, err
		}
		*dst = s
	}
	p.acrValues = strings.Fields(acr)
	return p, nil
}

// claimString is a request object parameter as the form would carry it.
func claimString(name string, v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case json.Number:
		// CIBA Core §7.1.1: requested_expiry may be a JSON number.
		if name == "requested_expiry" {
			n, err := x.Int64()
			if err != nil {
				return "", fmt.Errorf("requested_expiry must be an integer")
			}
			return strconv.FormatInt(n, 10), nil
		}
	case []any:
		if name == "authorization_details" {
			b, _ := json.Marshal(x)
			return string(b), nil
		}
	}
	return "", fmt.Errorf("%s has the wrong type", name)
}

func jwtProblem(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return "expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "not valid yet"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "aud must be the issuer"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "iss must be the client_id"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "a required claim is missing"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return "signature invalid"
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed"
	}
	return "invalid"
}

// resolveUser finds the user a hint names (CIBA Core §7.1).
// known is the user already read for a login_hint, if any.
func (s *Service) resolveUser(ctx context.Context, cl *store.Client, p params, known *store.User) (*store.User, error) {
	var hint string
	switch {
	case p.loginHint != "":
		if known != nil {
			return known, nil
		}
		hint = p.loginHint
	case p.idTokenHint != "":
		sub, err := s.tokens.VerifyIDTokenHint(p.idTokenHint, cl.ID)
		if err != nil {
			return nil, oauth.New(oauth.InvalidRequest, "id_token_hint is not an ID token issued by this server")
		}
		hint = sub
	default:
		h, err := s.loginHintToken(cl, p.loginHintToken)
		if err != nil {
			return nil, err
		}
		hint = h
	}
	u, err := s.db.UserByHint(ctx, normalizeHint(hint))
	if errors.Is(err, store.ErrNotFound) {
		return nil, oauth.New(oauth.UnknownUserID, "no user matches the hint")
	}
	return u, err
}

func normalizeHint(h string) string {
	if strings.Contains(h, "@") {
		return strings.ToLower(strings.TrimSpace(h))
	}
	return h
}

// loginHintToken verifies a login_hint_token: a JWT signed with the
// client's registered key, iss the client, aud the issuer, exp, and sub or
// email.
func (s *Service) loginHintToken(cl *store.Client, tok string) (string, error) {
	keys, err := clientauth.ParseJWKS(cl.JWKS)
	if err != nil || len(keys) == 0 {
		return "", oauth.New(oauth.InvalidRequest, "login_hint_token: the client has no registered keys")
	}
	algs := clientauth.AsymmetricAlgs
	if cl.RequestSigningAlg != "" {
		algs = []string{cl.RequestSigningAlg}
	}
	claims := jwt.MapClaims{}
	_, err = jwt.ParseWithClaims(tok, claims, keys.Keyfunc(), jwt.WithValidMethods(algs),
		jwt.WithTimeFunc(s.Now), jwt.WithIssuer(cl.ID), jwt.WithAudience(s.cfg.Issuer), jwt.WithExpirationRequired())
	if errors.Is(err, jwt.ErrTokenExpired) {
		// CIBA Core §13: expired_login_hint_token.
		return "", oauth.New(oauth.ExpiredLoginHintToken, "login_hint_token has expired")
	}
	if err != nil {
		return "", oauth.New(oauth.InvalidRequest, "login_hint_token: %s", jwtProblem(err))
	}
	if sub, _ := claims["sub"].(string); sub != "" {
		return sub, nil
	}
	if email, _ := claims["email"].(string); email != "" {
		return email, nil
	}
	return "", oauth.New(oauth.InvalidRequest, "login_hint_token needs sub or email")
}
