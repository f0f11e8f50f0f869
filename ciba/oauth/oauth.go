package oauth

import (
	"fmt"
	"net/http"
	"strings"
)

// Grant and token type names.
const (
	GrantCIBA          = "urn:openid:params:grant-type:ciba"
	GrantTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"

	TokenTypeAccessToken = "urn:ietf:params:oauth:token-type:access_token"
	TokenTypeJWT         = "urn:ietf:params:oauth:token-type:jwt"

	ClaimAuthReqID = "urn:openid:params:jwt:claim:auth_req_id"

	ACRPolicy  = "urn:countersign:acr:policy"
	ACRContext = "urn:countersign:acr:context"
	ACRDevice  = "urn:countersign:acr:device"
	// ACRMandate: approved by the user's intent mandate, signed on their
	// device when it was created.
	ACRMandate = "urn:countersign:acr:mandate"
)

// Error codes from RFC 6749 §5.2, CIBA Core §11 and §13, RFC 9396 §5,
// RFC 7591 §3.2.2, RFC 9449 §12 and our own admin/device API.
const (
	InvalidRequest              = "invalid_request"
	InvalidClient               = "invalid_client"
	InvalidGrant                = "invalid_grant"
	UnauthorizedClient          = "unauthorized_client"
	UnsupportedGrantType        = "unsupported_grant_type"
	InvalidScope                = "invalid_scope"
	AccessDenied                = "access_denied"
	ExpiredToken                = "expired_token"
	AuthorizationPending        = "authorization_pending"
	SlowDown                    = "slow_down"
	ExpiredLoginHintToken       = "expired_login_hint_token"
	UnknownUserID               = "unknown_user_id"
	MissingUserCode             = "missing_user_code"
	InvalidUserCode             = "invalid_user_code"
	InvalidBindingMessage       = "invalid_binding_message"
	InvalidAuthorizationDetails = "invalid_authorization_details"
	InvalidClientMetadata       = "invalid_client_metadata"
	InvalidDPoPProof            = "invalid_dpop_proof"
	UseDPoPNonce                = "use_dpop_nonce"
	InvalidToken                = "invalid_token"
	ServerError                 = "server_error"
	TemporarilyUnavailable      = "temporarily_unavailable"
	NotFound                    = "not_found"
	MethodNotAllowed            = "method_not_allowed"
	Conflict                    = "conflict"
	InvalidRuleset              = "invalid_ruleset"
	RequestEntityTooLarge       = "request_too_large"
	UnsupportedTokenType        = "unsupported_token_type"
	InvalidTarget               = "invalid_target"
)

// Error is a protocol error: a code, a description that is safe to show,
// the HTTP status, and the headers the RFCs require with it.
type Error struct {
	Code        string
	Description string
	Status      int
	// Header holds extra response headers (WWW-Authenticate, Retry-After,
	// DPoP-Nonce, Allow).
	Header http.Header
	// Extra holds additional JSON members for the few errors that define
	// them (the admin API's "problems"); OAuth endpoints never set it.
	Extra map[string]any
}

func (e *Error) Error() string { return e.Code + ": " + e.Description }

// New returns an error with the status the RFCs give its code.
func New(code, format string, args ...any) *Error {
	return &Error{Code: code, Description: clean(fmt.Sprintf(format, args...)), Status: statusOf(code)}
}

// WithStatus returns a copy of e with another status; e is unchanged, so
// a shared error value can be derived from safely.
func (e *Error) WithStatus(status int) *Error {
	c := e.Copy()
	c.Status = status
	return c
}

// WithHeader returns a copy of e with one more response header; e is
// unchanged.
func (e *Error) WithHeader(key, value string) *Error {
	c := e.Copy()
	if c.Header == nil {
		c.Header = http.Header{}
	}
	c.Header.Set(key, value)
	return c
}

// Copy returns a deep copy of e: its header and extra members are its own.
func (e *Error) Copy() *Error {
	c := *e
	c.Header = e.Header.Clone()
	if e.Extra != nil {
		c.Extra = make(map[string]any, len(e.Extra))
		for k, v := range e.Extra {
			c.Extra[k] = v
		}
	}
	return &c
}

// Client returns a 401 invalid_client with the WWW-Authenticate challenge
// (RFC 6749 §5.2: the header is required when the client tried HTTP auth;
// we always send it so a client learns which scheme to use).
func Client(format string, args ...any) *Error {
	return New(InvalidClient, format, args...).WithHeader("WWW-Authenticate", `Basic realm="countersign", charset="UTF-8"`)
}

func statusOf(code string) int {
	switch code {
	case InvalidClient, InvalidToken:
		return http.StatusUnauthorized
	case AccessDenied:
		return http.StatusForbidden
	case NotFound:
		return http.StatusNotFound
	case MethodNotAllowed:
		return http.StatusMethodNotAllowed
	case Conflict:
		return http.StatusConflict
	case RequestEntityTooLarge:
		return http.StatusRequestEntityTooLarge
	case ServerError:
		return http.StatusInternalServerError
	case TemporarilyUnavailable:
		return http.StatusServiceUnavailable
	default:
		return http.StatusBadRequest
	}
}

// clean drops control characters and the characters RFC 6749 §5.2 forbids
// in error_description (only %x20-21 / %x23-5B / %x5D-7E are allowed; we
// keep '"' and '\' out and let other printable Unicode through as JSON).
func clean(s string) string {
	s = strings.Map(func(r rune) rune {
		switch {
		case r < 0x20 || r == 0x7f:
			return ' '
		case r == '"' || r == '\\':
			return -1
		}
		return r
	}, s)
	return strings.Join(strings.Fields(s), " ")
}
