package resource

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/countersign/countersign/ciba/dpop"
	"github.com/countersign/countersign/ciba/oauth"
	"github.com/countersign/countersign/ciba/token"
)

// Claims are what the middleware verified about the caller.
type Claims struct {
	Issuer               string
	Subject              string // the user
	ClientID             string
	Act                  *token.Act // the actor chain (RFC 8693 §4.1)
	Scope                string
	AuthorizationDetails json.RawMessage
	Audience             []string
	ID                   string // jti
	GrantID              string
	Expiry               time.Time
	// JKT is the cnf.jkt the token is bound to; "" for a bearer token.
	JKT string
}

// HasScope reports whether the token's scope includes s.
func (c *Claims) HasScope(s string) bool { return slices.Contains(strings.Fields(c.Scope), s) }

type ctxKey struct{}

// FromContext returns the claims the middleware put in a request's context.
func FromContext(ctx context.Context) (*Claims, bool) {
	c, ok := ctx.Value(ctxKey{}).(*Claims)
	return c, ok
}

// Middleware verifies access tokens. Issuer and Audience are required;
// with IntrospectionClientID set tokens are introspected, else verified
// against the JWKS.
type Middleware struct {
	Issuer   string // the authorization server's issuer URL
	Audience string // this resource server's identifier, required in aud
	HTTP     *http.Client
	Now      func() time.Time

	// IntrospectionClientID and IntrospectionSecret are this resource
	// server's client credentials (client_secret_basic) at the
	// authorization server (RFC 7662 §2.1).
	IntrospectionClientID, IntrospectionSecret string

	// DPoP checks proofs. Nil means dpop.DefaultAlgs, a 60 s window and a
	// per-process MemoryGuard: enough for one instance; several instances
	// must share a Verifier whose Replay is shared storage.
	DPoP *dpop.Verifier
	// PublicURL is the scheme://host[:port] clients use to reach this
	// server, the base of the URL a proof's htu must name. Empty: taken
	// from the request (https when it came over TLS, and its Host).
	PublicURL string
	Realm     string
	// Log receives server-side failures (the JWKS or introspection
	// unreachable); nil means slog.Default().
	Log *slog.Logger

	once     sync.Once
	verifier *dpop.Verifier
	mu       sync.Mutex
	meta     *metadata
	keys     map[string]any // kid -> public key
	fetched  time.Time
}

// Handler returns next guarded by m.
func (m *Middleware) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := m.authenticate(r)
		if err != nil {
			m.refuse(w, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, c)))
	})
}

// refusal is a failed check and the challenge it answers with.
type refusal struct {
	status     int
	scheme     string // "Bearer", "DPoP" or "" for both (no credentials)
	code, desc string
	nonce      string
	err        error // the cause of a server error, logged, never shown
}

func (e *refusal) Error() string { return e.code + ": " + e.desc }

func refuse(scheme, code, desc string) *refusal {
	return &refusal{status: http.StatusUnauthorized, scheme: scheme, code: code, desc: desc}
}

func (m *Middleware) authenticate(r *http.Request) (*Claims, error) {
	auths := r.Header.Values("Authorization")
	if len(auths) == 0 {
		// RFC 6750 §3.1: no credentials, no error code.
		return nil, &refusal{status: http.StatusUnauthorized}
	}
	if len(auths) > 1 {
		return nil, &refusal{status: http.StatusBadRequest, code: oauth.InvalidRequest, desc: "more than one Authorization header"}
	}
	scheme, tok, _ := strings.Cut(auths[0], " ")
	tok = strings.TrimSpace(tok)
	switch {
	case strings.EqualFold(scheme, "Bearer"):
		scheme = "Bearer"
	case strings.EqualFold(scheme, "DPoP"):
		scheme = "DPoP"
	default:
		return nil, &refusal{status: http.StatusUnauthorized}
	}
	if tok == "" {
		return nil, refuse(scheme, oauth.InvalidToken, "the access token is missing")
	}
	c, err := m.verifyToken(r.Context(), tok)
	if err != nil {
		var ref *refusal
		if errors.As(err, &ref) {
			ref.scheme = scheme
			return nil, ref
		}
		return nil, &refusal{status: http.StatusInternalServerError, code: oauth.ServerError, desc: "token verification failed", err: err}
	}
	if c.JKT == "" {
		// RFC 9449 §7.2: the DPoP scheme is for DPoP-bound tokens only.
		if scheme == "DPoP" {
			return nil, refuse("DPoP", oauth.InvalidToken, "the access token is not DPoP-bound")
		}
		return c, nil
	}
	// RFC 9449 §7.1: a bound token is not a bearer token.
	if scheme != "DPoP" {
		return nil, refuse("DPoP", oauth.InvalidToken, "the access token is DPoP-bound: use the DPoP scheme with a proof")
	}
	proof, err := dpop.FromHeader(r.Header)
	if err == nil {
		var p *dpop.Proof
		p, err = m.dpop().Verify(r.Context(), proof, r.Method, m.requestURL(r), tok)
		// RFC 9449 §7.1: the proof's key is the one the token is bound to.
		if err == nil && p.JKT != c.JKT {
			err = oauth.New(oauth.InvalidDPoPProof, "the DPoP proof is not signed by the key the token is bound to")
		}
	}
	if err != nil {
		var oe *oauth.Error
		if !errors.As(err, &oe) {
			return nil, &refusal{status: http.StatusInternalServerError, code: oauth.ServerError, desc: "proof verification failed", err: err}
		}
		ref := refuse("DPoP", oe.Code, oe.Description)
		ref.nonce = oe.Header.Get("DPoP-Nonce")
		return nil, ref
	}
	return c, nil
}

func (m *Middleware) dpop() *dpop.Verifier {
	if m.DPoP != nil {
		return m.DPoP
	}
	m.once.Do(func() {
		m.verifier = &dpop.Verifier{Now: m.now, Replay: &dpop.MemoryGuard{Now: m.now}}
	})
	return m.verifier
}

// requestURL is the URL a proof's htu must name (RFC 9449 §4.3 step 9).
func (m *Middleware) requestURL(r *http.Request) string {
	base := strings.TrimSuffix(m.PublicURL, "/")
	if base == "" {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		base = scheme + "://" + r.Host
	}
	return base + r.URL.EscapedPath()
}

func (m *Middleware) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

// refuse answers with the challenge of RFC 6750 §3 / RFC 9449 §7.1 and
// the JSON error body.
func (m *Middleware) refuse(w http.ResponseWriter, err error) {
	ref, _ := err.(*refusal)
	if ref.err != nil {
		log := m.Log
		if log == nil {
			log = slog.Default()
		}
		log.Error("resource: cannot verify a request", "err", ref.err)
	}
	h := w.Header()
	params := func(scheme string) string {
		p := []string{}
		if m.Realm != "" {
			p = append(p, `realm="`+m.Realm+`"`)
		}
		if scheme == "DPoP" {
			p = append(p, `algs="`+strings.Join(m.dpop().SupportedAlgs(), " ")+`"`)
		}
		if ref.code != "" && ref.status == http.StatusUnauthorized {
			p = append(p, `error="`+ref.code+`"`, `error_description="`+ref.desc+`"`)
		}
		if len(p) == 0 {
			return scheme
		}
		return scheme + " " + strings.Join(p, ", ")
	}
	switch {
	case ref.status != http.StatusUnauthorized:
	case ref.scheme == "":
		h.Add("WWW-Authenticate", params("Bearer"))
		h.Add("WWW-Authenticate", params("DPoP"))
	default:
		h.Add("WWW-Authenticate", params(ref.scheme))
	}
	if ref.nonce != "" {
		h.Set("DPoP-Nonce", ref.nonce)
	}
	h.Set("Cache-Control", "no-store")
	if ref.code == "" {
		w.WriteHeader(ref.status)
		return
	}
	h.Set("Content-Type", "application/json")
	w.WriteHeader(ref.status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": ref.code, "error_description": ref.desc})
}
