package dpop

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/countersign/countersign/ciba/clientauth"
	"github.com/countersign/countersign/ciba/oauth"
	"github.com/countersign/countersign/ciba/token"
)

// DefaultAlgs are the proof algorithms accepted when Verifier.Algs is
// empty, and what discovery advertises as dpop_signing_alg_values_supported.
var DefaultAlgs = []string{"ES256", "ES384", "EdDSA", "PS256", "RS256"}

// asymmetric are the algorithms a proof may ever use: RFC 9449 §4.3 step 5
// forbids "none" and MAC algorithms whatever Algs says.
var asymmetric = []string{"ES256", "ES384", "EdDSA", "PS256", "RS256"}

// DefaultIATWindow is how far iat may be from now, either side, when
// Verifier.IATWindow is zero.
const DefaultIATWindow = 60 * time.Second

// ReplayKind is the kind under which proof identifiers are recorded.
const ReplayKind = "dpop"

// maxProofLen bounds the header value: an RSA-4096 jwk with every claim
// fits in well under 8 KiB.
const maxProofLen = 8 << 10

// maxJTILen bounds the jti kept by the replay guard.
const maxJTILen = 256

// ReplayGuard records single-use identifiers; ciba/store.DB implements it.
type ReplayGuard interface {
	// UseOnce reports false when id of kind was already used before until.
	UseOnce(ctx context.Context, kind, id string, until time.Time) (bool, error)
}

// Verifier checks DPoP proofs. Its zero Algs, IATWindow and Now mean
// DefaultAlgs, DefaultIATWindow and time.Now; Replay is required.
type Verifier struct {
	Algs      []string
	IATWindow time.Duration
	Now       func() time.Time
	Replay    ReplayGuard
	// Nonces, when set, makes a server nonce mandatory (RFC 9449 §8).
	Nonces *Nonces
}

// Proof is a verified proof.
type Proof struct {
	JKT   string         // RFC 7638 thumbprint of JWK: the token's cnf.jkt
	JWK   map[string]any // the public key from the header
	HTM   string
	HTU   string
	IAT   time.Time
	JTI   string
	ATH   string
	Nonce string
}

// header is the proof's JOSE header.
type header struct {
	Typ  string          `json:"typ"`
	Alg  string          `json:"alg"`
	JWK  map[string]any  `json:"jwk"`
	Crit json.RawMessage `json:"crit,omitempty"`
}

// claims is the proof's payload (RFC 9449 §4.2).
type claims struct {
	JTI   string   `json:"jti"`
	HTM   string   `json:"htm"`
	HTU   string   `json:"htu"`
	IAT   *float64 `json:"iat"`
	ATH   string   `json:"ath"`
	Nonce string   `json:"nonce"`
}

// privateMembers are the JWK members that carry private or symmetric key
// material (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037 §2).
var privateMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

func invalid(format string, args ...any) *oauth.Error {
	return oauth.New(oauth.InvalidDPoPProof, format, args...)
}

// FromHeader returns the one DPoP header value of a request, "" when
// there is none; more than one is invalid_dpop_proof (RFC 9449 §4.3 step 1).
func FromHeader(h http.Header) (string, error) {
	vs := h.Values("DPoP")
	switch {
	case len(vs) == 0:
		return "", nil
	case len(vs) > 1 || strings.Contains(vs[0], ","):
		return "", invalid("more than one DPoP header")
	}
	return vs[0], nil
}

// Verify checks proof, the DPoP header value ("" when absent), against the
// request's method and URL. accessToken is "" at the token endpoint; at a
// resource it is the token the proof must carry the hash of (ath). The one
// stateful check, the jti replay guard, runs last, so a proof that fails
// any other check costs no round trip.
func (v *Verifier) Verify(ctx context.Context, proof, method, url, accessToken string) (*Proof, error) {
	p, err := v.decodeProof(proof)
	if err != nil {
		return nil, err
	}
	if err := checkRequiredClaims(&p.c); err != nil {
		return nil, err
	}
	if err := checkMethod(&p.c, method); err != nil {
		return nil, err
	}
	if err := checkURL(&p.c, url); err != nil {
		return nil, err
	}
	iat, err := v.checkIAT(&p.c)
	if err != nil {
		return nil, err
	}
	if err := v.checkNonce(&p.c); err != nil {
		return nil, err
	}
	if err := checkATH(&p.c, accessToken); err != nil {
		return nil, err
	}
	jkt, err := token.Thumbprint(p.h.JWK)
	if err != nil {
		return nil, invalid("the DPoP proof jwk has no thumbprint")
	}
	if err := v.checkReplay(ctx, jkt, p.c.JTI, iat); err != nil {
		return nil, err
	}
	c := p.c
	return &Proof{JKT: jkt, JWK: p.h.JWK, HTM: c.HTM, HTU: c.HTU, IAT: iat, JTI: c.JTI, ATH: c.ATH, Nonce: c.Nonce}, nil
}

// decoded is a proof whose signature verified with its own jwk.
type decoded struct {
	h header
	c claims
}

// decodeProof runs the stateless checks of the JOSE layer: RFC 9449 §4.3
// steps 1, 2 and 4-7.
func (v *Verifier) decodeProof(proof string) (*decoded, error) {
	// RFC 9449 §4.3 step 1: exactly one DPoP header.
	if proof == "" {
		return nil, invalid("the DPoP proof is missing")
	}
	if len(proof) > maxProofLen {
		return nil, invalid("the DPoP proof is too large")
	}
	// RFC 9449 §4.3 step 2: a well-formed JWT (compact JWS).
	parts := strings.Split(proof, ".")
	if len(parts) != 3 {
		return nil, invalid("the DPoP proof is not a JWT")
	}
	var p decoded
	if err := decodeSegment(parts[0], &p.h); err != nil {
		return nil, invalid("the DPoP proof header is not valid JSON")
	}
	if err := v.checkHeader(&p.h); err != nil {
		return nil, err
	}
	if err := checkSignature(&p.h, parts); err != nil {
		return nil, err
	}
	if err := decodeSegment(parts[1], &p.c); err != nil {
		return nil, invalid("the DPoP proof claims are not valid JSON")
	}
	return &p, nil
}

// checkHeader checks crit, typ and alg.
func (v *Verifier) checkHeader(h *header) error {
	// RFC 7515 §4.1.11: we understand no extension, so crit is refused.
	if h.Crit != nil {
		return invalid("the DPoP proof has a crit header")
	}
	// RFC 9449 §4.3 step 4: typ is dpop+jwt (a media type: case-insensitive).
	if !strings.EqualFold(h.Typ, "dpop+jwt") {
		return invalid("the DPoP proof typ must be dpop+jwt")
	}
	// RFC 9449 §4.3 step 5: an asymmetric alg we support; never none or MAC.
	if !slices.Contains(asymmetric, h.Alg) || !slices.Contains(v.algs(), h.Alg) {
		return invalid("the DPoP proof alg %s is not supported", h.Alg)
	}
	return nil
}

// checkSignature verifies the JWS with the key of its own jwk header.
func checkSignature(h *header, parts []string) error {
	// RFC 9449 §4.3 step 7: the jwk header is a public key.
	pub, err := publicKey(h.JWK, h.Alg)
	if err != nil {
		return err
	}
	// RFC 9449 §4.3 step 6: the signature verifies with that jwk.
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return invalid("the DPoP proof signature is not base64url")
	}
	if err := jwt.GetSigningMethod(h.Alg).Verify(parts[0]+"."+parts[1], sig, pub); err != nil {
		return invalid("the DPoP proof signature does not verify with its jwk")
	}
	return nil
}

// checkRequiredClaims: RFC 9449 §4.3 step 3, the required claims (htm and
// htu are compared in steps 8 and 9).
func checkRequiredClaims(c *claims) error {
	if c.JTI == "" || len(c.JTI) > maxJTILen {
		return invalid("the DPoP proof jti is missing or too long")
	}
	if c.IAT == nil || math.IsNaN(*c.IAT) || *c.IAT < 0 || *c.IAT > 1e11 {
		return invalid("the DPoP proof iat is missing or not a time")
	}
	return nil
}

// checkMethod: RFC 9449 §4.3 step 8, htm is the request's method.
func checkMethod(c *claims, method string) error {
	if c.HTM != method {
		return invalid("the DPoP proof htm does not match the request method")
	}
	return nil
}

// checkURL: RFC 9449 §4.3 step 9, htu is the request's URL without query
// and fragment, after RFC 3986 §6.2.2-3 normalisation.
func checkURL(c *claims, url string) error {
	want, err := normalURL(url)
	if err != nil {
		return fmt.Errorf("dpop: request URL: %w", err)
	}
	if got, err := normalURL(c.HTU); err != nil || got != want {
		return invalid("the DPoP proof htu does not match the request URL")
	}
	return nil
}

// checkIAT: RFC 9449 §4.3 step 11, iat within the acceptable window.
func (v *Verifier) checkIAT(c *claims) (time.Time, error) {
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	iat := time.Unix(int64(*c.IAT), 0).UTC()
	window := v.window()
	t := now()
	if iat.Before(t.Add(-window)) {
		return time.Time{}, invalid("the DPoP proof iat is too old")
	}
	if iat.After(t.Add(window)) {
		return time.Time{}, invalid("the DPoP proof iat is in the future")
	}
	return iat, nil
}

// checkNonce: RFC 9449 §4.3 step 10, the server nonce when it requires one
// (§8: use_dpop_nonce with a fresh DPoP-Nonce).
func (v *Verifier) checkNonce(c *claims) error {
	if v.Nonces != nil && (c.Nonce == "" || !v.Nonces.Valid(c.Nonce)) {
		e := oauth.New(oauth.UseDPoPNonce, "the authorization server requires a fresh DPoP nonce")
		return e.WithHeader("DPoP-Nonce", v.Nonces.Issue())
	}
	return nil
}

// checkATH: RFC 9449 §4.3 step 12 (§7.1 at a resource), ath is the access
// token's hash; compared in constant time.
func checkATH(c *claims, accessToken string) error {
	if accessToken == "" {
		return nil
	}
	if c.ATH == "" || subtle.ConstantTimeCompare([]byte(c.ATH), []byte(TokenHash(accessToken))) != 1 {
		return invalid("the DPoP proof ath does not match the access token")
	}
	return nil
}

// checkReplay: RFC 9449 §11.1, a jti is used once while its proof is
// acceptable. Keyed by the key's thumbprint too, so nobody can burn
// another key's jti.
func (v *Verifier) checkReplay(ctx context.Context, jkt, jti string, iat time.Time) error {
	if v.Replay == nil {
		return errors.New("dpop: Verifier.Replay is not set")
	}
	fresh, err := v.Replay.UseOnce(ctx, ReplayKind, jkt+":"+jti, iat.Add(v.window()))
	if err != nil {
		return err
	}
	if !fresh {
		return invalid("the DPoP proof was already used (jti replay)")
	}
	return nil
}

func (v *Verifier) algs() []string {
	if len(v.Algs) == 0 {
		return DefaultAlgs
	}
	return v.Algs
}

// SupportedAlgs returns the algorithms v accepts, for discovery's
// dpop_signing_alg_values_supported and the algs of a DPoP challenge.
func (v *Verifier) SupportedAlgs() []string {
	var out []string
	for _, a := range v.algs() {
		if slices.Contains(asymmetric, a) {
			out = append(out, a)
		}
	}
	return out
}

func (v *Verifier) window() time.Duration {
	if v.IATWindow <= 0 {
		return DefaultIATWindow
	}
	return v.IATWindow
}

// TokenHash is ath: base64url(SHA-256(access token)) (RFC 9449 §4.2).
func TokenHash(accessToken string) string {
	sum := sha256.Sum256([]byte(accessToken))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func decodeSegment(s string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// publicKey parses the jwk header and checks it fits alg.
func publicKey(m map[string]any, alg string) (crypto.PublicKey, error) {
	if m == nil {
		return nil, invalid("the DPoP proof has no jwk header")
	}
	// RFC 9449 §4.3 step 7: the jwk must not contain a private key.
	for _, k := range privateMembers {
		if _, ok := m[k]; ok {
			return nil, invalid("the DPoP proof jwk contains private key material")
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, invalid("the DPoP proof jwk is malformed")
	}
	var jwk clientauth.JWK
	if err := json.Unmarshal(b, &jwk); err != nil {
		return nil, invalid("the DPoP proof jwk is malformed")
	}
	pub, err := jwk.PublicKey()
	if err != nil {
		return nil, invalid("the DPoP proof jwk is not a usable public key")
	}
	// RFC 7518 §3.4, RFC 8037 §3.1: the key type and curve follow from alg.
	ok := false
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		ok = (alg == "ES256" && k.Curve.Params().BitSize == 256) || (alg == "ES384" && k.Curve.Params().BitSize == 384)
	case ed25519.PublicKey:
		ok = alg == "EdDSA"
	case *rsa.PublicKey:
		ok = alg == "RS256" || alg == "PS256"
	}
	if !ok {
		return nil, invalid("the DPoP proof jwk does not fit alg %s", alg)
	}
	return pub, nil
}
