package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/base64"
	"fmt"
	"net/url"
	"sort"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// auditEvent is the part of an audit entry the checks read.
type auditEvent struct {
	Type        string `json:"type"`
	RequestID   string `json:"request_id"`
	Path        string `json:"path"`
	DecisionJWT string `json:"decision_jwt"`
	TokenJTI    string `json:"token_jti"`
}

// auditOf reads every event of one type (GET /admin/audit, paged).
func (c *cluster) auditOf(typ string) ([]auditEvent, error) {
	var all []auditEvent
	cursor := ""
	for {
		q := url.Values{"type": {typ}, "limit": {"1000"}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		r, err := c.api.adminCall(c.nodes[0].url(), "GET", "/admin/audit?"+q.Encode(), nil)
		if err != nil {
			return nil, err
		}
		entries, _ := r.Body["entries"].([]any)
		for _, e := range entries {
			m, _ := e.(map[string]any)
			s := func(k string) string { v, _ := m[k].(string); return v }
			all = append(all, auditEvent{Type: s("type"), RequestID: s("request_id"), Path: s("path"),
				DecisionJWT: s("decision_jwt"), TokenJTI: s("token_jti")})
		}
		cursor = r.str("next_cursor")
		if cursor == "" || len(entries) == 0 {
			return all, nil
		}
	}
}

// jwks fetches the signing keys (ES256) by kid.
func (c *cluster) jwks() (map[string]*ecdsa.PublicKey, error) {
	r, err := c.api.adminCall(c.nodes[0].url(), "GET", "/jwks.json", nil)
	if err != nil {
		return nil, err
	}
	keys := map[string]*ecdsa.PublicKey{}
	list, _ := r.Body["keys"].([]any)
	for _, k := range list {
		m, _ := k.(map[string]any)
		x, err1 := coord(m["x"])
		y, err2 := coord(m["y"])
		kid, _ := m["kid"].(string)
		if err1 != nil || err2 != nil || m["crv"] != "P-256" {
			continue
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
		if err != nil {
			continue
		}
		keys[kid] = pub
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("no P-256 key in the JWKS: %s", r.Raw)
	}
	return keys, nil
}

// coord decodes one JWK coordinate (RFC 7518 §6.2.1.2: 32 bytes for P-256).
func coord(v any) ([]byte, error) {
	s, _ := v.(string)
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != 32 {
		return nil, fmt.Errorf("bad coordinate")
	}
	return b, nil
}

// verifyToken checks an access token's ES256 signature and returns its claims.
func verifyToken(tok string, keys map[string]*ecdsa.PublicKey) (jwt.MapClaims, error) {
	cl := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(tok, cl, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		if k := keys[kid]; k != nil {
			return k, nil
		}
		return nil, fmt.Errorf("unknown kid %q", kid)
	}, jwt.WithValidMethods([]string{"ES256"}), jwt.WithoutClaimsValidation())
	return cl, err
}

// report is what one mode's run found; zero in every "bad" count and a
// linearizable history is a pass.
type report struct {
	Fsync        string            `json:"appendfsync"`
	Start        time.Time         `json:"start"`
	Duration     string            `json:"duration"`
	Flows        map[string]int    `json:"flows"`
	Requests     int               `json:"requests"`
	Orphans      int               `json:"orphans"`
	Operations   int               `json:"operations"`
	Tokens       int               `json:"tokens_seen"`
	DevicePushes int               `json:"device_pushes"`
	Decisions    map[string]int    `json:"decisions"`
	Callbacks    map[string]int    `json:"callbacks"`
	Sabotaged    map[string]int    `json:"sabotaged_callbacks"`
	Bad          map[string]int    `json:"bad"`
	Info         map[string]int    `json:"info"`
	Faults       []faultReport     `json:"faults"`
	AuditChecked int               `json:"audit_events_verified"`
	AuditOK      bool              `json:"audit_chain_ok"`
	Linearizable string            `json:"linearizable"`
	LinFailures  []string          `json:"lin_failures,omitempty"`
	Undelivered  []string          `json:"undelivered_callbacks,omitempty"`
	LinDetail    []string          `json:"lin_failure_histories,omitempty"`
	LinExcused   []string          `json:"lin_excused_everysec,omitempty"`
	SelfCheck    string            `json:"lin_self_check"`
	CheckSeconds float64           `json:"lin_check_seconds"`
	RedisAOF     map[string]string `json:"redis_persistence"`
	Problems     []string          `json:"problems,omitempty"`
	Excused      map[string]int    `json:"excused_everysec"`

	excuse func(id string) bool // nil: nothing is excused (appendfsync always)
	kills  []time.Time          // when Redis was killed
}

type faultReport struct {
	faultRec
	Seconds        float64        `json:"fault_seconds"`
	RecoverSeconds float64        `json:"recover_seconds"`
	Calls          map[string]int `json:"calls_by_class"`
	Failures       map[string]int `json:"failures"`
}

// badReq counts a finding about one request, or, under appendfsync
// everysec, files it as excused when the request had a call acknowledged
// within 2 s before a Redis kill -9 (AOF fsyncs once a second: that
// write may be gone, by design of the mode).
func (rep *report) badReq(id, k, example string) {
	if rep.excuse != nil && rep.excuse(id) {
		rep.Excused[k]++
		if len(rep.Problems) < 40 {
			rep.Problems = append(rep.Problems, "excused (everysec): "+k+": "+example)
		}
		return
	}
	rep.bad(k, 1, example)
}

func (rep *report) bad(k string, n int, example string) {
	rep.Bad[k] += n
	if n > 0 && example != "" && len(rep.Problems) < 40 {
		rep.Problems = append(rep.Problems, k+": "+example)
	}
}

func sortedKeys[M ~map[string]V, V any](m M) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
