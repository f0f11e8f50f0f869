package server

import (
	"net/url"

	"github.com/labstack/echo/v4"

	"github.com/countersign/countersign/ciba"
	"github.com/countersign/countersign/ciba/clientauth"
	"github.com/countersign/countersign/ciba/dpop"
	"github.com/countersign/countersign/ciba/oauth"
	"github.com/countersign/countersign/ciba/rar"
	"github.com/countersign/countersign/rules"
)

func (s *srv) credentials(c echo.Context) (clientauth.Credentials, url.Values, error) {
	form, err := readForm(c)
	if err != nil {
		return clientauth.Credentials{}, nil, err
	}
	user, pass, hasBasic := c.Request().BasicAuth()
	creds, err := clientauth.Parse(user, pass, hasBasic, form)
	if err != nil {
		s.credentialsFailed(c, err)
	}
	return creds, form, err
}

func (s *srv) bcAuthorize(c echo.Context) error {
	creds, form, err := s.credentials(c)
	if err != nil {
		return err
	}
	resp, err := s.Service.BackchannelAuthorize(c.Request().Context(), ciba.AuthorizeInput{
		Credentials: creds, Form: form, Endpoint: endpoint(c, s.Service.Config().Issuer),
		IP: c.RealIP(), UserAgent: c.Request().UserAgent(),
	})
	if err != nil {
		return err
	}
	noStore(c)
	return c.JSON(200, resp)
}

func (s *srv) token(c echo.Context) error {
	creds, form, err := s.credentials(c)
	if err != nil {
		return err
	}
	proof, err := dpop.FromHeader(c.Request().Header)
	if err != nil {
		return err
	}
	resp, err := s.Service.Token(c.Request().Context(), ciba.TokenInput{
		Credentials: creds, Form: form, Endpoint: endpoint(c, s.Service.Config().Issuer),
		IP: c.RealIP(), DPoP: proof,
	})
	if err != nil {
		return err
	}
	noStore(c)
	return c.JSON(200, resp)
}

func (s *srv) discovery(c echo.Context) error {
	iss := s.Service.Config().Issuer
	return c.JSON(200, map[string]any{
		"issuer":                              iss,
		"token_endpoint":                      iss + "/token",
		"jwks_uri":                            iss + "/jwks.json",
		"backchannel_authentication_endpoint": iss + "/bc-authorize",
		"backchannel_token_delivery_modes_supported":                      []string{"poll", "ping", "push"},
		"backchannel_authentication_request_signing_alg_values_supported": clientauth.AsymmetricAlgs,
		"backchannel_user_code_parameter_supported":                       true,
		"grant_types_supported":                                           []string{oauth.GrantCIBA, oauth.GrantTokenExchange},
		"token_endpoint_auth_methods_supported":                           []string{clientauth.SecretBasic, clientauth.SecretPost, clientauth.PrivateKeyJWT},
		"token_endpoint_auth_signing_alg_values_supported":                clientauth.AsymmetricAlgs,
		"introspection_endpoint":                                          iss + "/introspect",
		"revocation_endpoint":                                             iss + "/revoke",
		"introspection_endpoint_auth_methods_supported":                   []string{clientauth.SecretBasic, clientauth.SecretPost, clientauth.PrivateKeyJWT},
		"revocation_endpoint_auth_methods_supported":                      []string{clientauth.SecretBasic, clientauth.SecretPost, clientauth.PrivateKeyJWT},
		"scopes_supported":                                                []string{"openid", "profile", "email"},
		"authorization_details_types_supported":                           rar.Types(),
		"id_token_signing_alg_values_supported":                           []string{"ES256"},
		"subject_types_supported":                                         []string{"public"},
		"response_types_supported":                                        []string{"none"},
		"acr_values_supported":                                            []string{oauth.ACRPolicy, oauth.ACRContext, oauth.ACRDevice, oauth.ACRMandate},
		"claims_parameter_supported":                                      false,
		"request_parameter_supported":                                     true,
		"dpop_signing_alg_values_supported":                               s.Service.DPoP.SupportedAlgs(),
	})
}

func (s *srv) jwks(c echo.Context) error {
	c.Response().Header().Set("Cache-Control", "public, max-age=300")
	return c.JSON(200, s.Keys().JWKS())
}

var _ = rules.PathDevice

func (s *srv) tokenInput(c echo.Context) (ciba.TokenInput, error) {
	creds, form, err := s.credentials(c)
	if err != nil {
		return ciba.TokenInput{}, err
	}
	return ciba.TokenInput{Credentials: creds, Form: form, Endpoint: endpoint(c, s.Service.Config().Issuer), IP: c.RealIP()}, nil
}

func (s *srv) revoke(c echo.Context) error {
	in, err := s.tokenInput(c)
	if err != nil {
		return err
	}
	if err := s.Service.Revoke(c.Request().Context(), in); err != nil {
		return err
	}
	noStore(c)
	return c.NoContent(200)
}

func (s *srv) introspect(c echo.Context) error {
	in, err := s.tokenInput(c)
	if err != nil {
		return err
	}
	out, err := s.Service.Introspect(c.Request().Context(), in)
	if err != nil {
		return err
	}
	noStore(c)
	return c.JSON(200, out)
}
