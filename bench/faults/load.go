package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	cibaGrant     = "urn:openid:params:grant-type:ciba"
	exchangeGrant = "urn:ietf:params:oauth:grant-type:token-exchange"
	accessType    = "urn:ietf:params:oauth:token-type:access_token"
)

// details per path the fault ruleset sends a request down.
var details = map[string]string{
	kindPolicy:  `[{"type":"agent_action","action":"read","resource":"calendar"}]`,
	kindContext: `[{"type":"agent_action","action":"write","resource":"calendar"}]`,
	kindDevice:  `[{"type":"payment_initiation","action":"transfer","amount":5000,"currency":"EUR","creditor":{"name":"ACME"}}]`,
	"deny":      `[{"type":"agent_action","action":"delete","resource":"calendar"}]`,
}

// faultRules is the run's ruleset: the action decides the path, so the
// client knows which path every request must take.
const faultRules = `format: countersign/v1
name: faults
description: Fault run - the action picks the path.
thresholds: {medium: 30, high: 60}
rules:
  - id: reads-allowed
    when: '"read" in action.actions'
    decision: allow
    reason: Reads are allowed.
  - id: writes-medium
    when: '"write" in action.actions'
    score: 40
    reason: A write needs context.
  - id: big-payment
    when: action.amount > 1000
    decision: require_device
    reason: The amount needs the phone.
  - id: no-deletes
    when: '"delete" in action.actions'
    decision: deny
    reason: Deletes are refused.
context_checks:
  - id: always
    require: 'true'
    reason: Never fails.
`

// reqRecord is the client's record of one request.
type reqRecord struct {
	ID, Kind, Plan, Mode, User string
	Call                       time.Time
	ExpiresAt                  time.Time // client-side upper bound
	mu                         sync.Mutex
	Tokens                     []string // access tokens seen (poll or push)
	Finals                     []string // final poll answers: access_denied, expired_token, invalid_grant, gave_up
	UnknownPoll                bool     // a /token call of unknown outcome
}

func (r *reqRecord) note(tok, final string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if tok != "" {
		r.Tokens = append(r.Tokens, tok)
	}
	if final != "" {
		r.Finals = append(r.Finals, final)
	}
}

// load drives the flows.
type load struct {
	api    *api
	nodes  []string // base URLs
	hist   *history
	rc     *receiver
	agents map[string]*agent // poll, ping, push, sub, rs
	users  []string
	seq    atomic.Int64
	dead   atomic.Bool // stop starting flows

	mu    sync.Mutex
	reqs  map[string]*reqRecord
	tally map[string]int // flow outcomes
}

func (l *load) count(k string) {
	l.mu.Lock()
	l.tally[k]++
	l.mu.Unlock()
}

func (l *load) node() string { return l.nodes[mrand.IntN(len(l.nodes))] }

func randToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// worker runs flows until the load stops.
func (l *load) worker(ctx context.Context, n int) {
	for !l.dead.Load() && ctx.Err() == nil {
		x := mrand.IntN(100)
		switch {
		case x < 22:
			l.pollFlow(ctx, n, kindPolicy, "approve", 30)
		case x < 32:
			l.pollFlow(ctx, n, kindContext, "approve", 30)
		case x < 47:
			l.pollFlow(ctx, n, kindDevice, "approve", 30)
		case x < 55:
			l.pollFlow(ctx, n, kindDevice, "deny", 30)
		case x < 62:
			l.pollFlow(ctx, n, kindDevice, "ignore", 3+mrand.IntN(3))
		case x < 66:
			l.policyDeny(ctx)
		case x < 83:
			l.notifyFlow(ctx, n, "ping")
		default:
			l.notifyFlow(ctx, n, "push")
		}
	}
}

// authorize sends one bc-authorize until it gets an answer that is not a
// fault; a request created by an unanswered call is an orphan nobody
// polls (its phone still decides it; the check leaves it out).
func (l *load) authorize(ctx context.Context, n int, c *agent, kind, plan string, expiry int) *reqRecord {
	seq := l.seq.Add(1)
	user := l.users[mrand.IntN(len(l.users))]
	v := url.Values{"scope": {"openid"}, "login_hint": {user}, "binding_message": {fmt.Sprintf("%s %d", plan, seq)},
		"authorization_details": {details[kind]}, "requested_expiry": {strconv.Itoa(expiry)}}
	var token string
	if c.mode != "poll" {
		token = randToken()
		v.Set("client_notification_token", token)
	}
	for try := 0; try < 30 && ctx.Err() == nil; try++ {
		call := time.Now()
		r := l.api.form(ctx, l.node(), "/bc-authorize", c, v)
		ret := time.Now()
		if r.unknownEffect() {
			l.count("bc-authorize retried after a fault")
			backoff(r)
			continue
		}
		if r.Status != 200 {
			l.count("bc-authorize refused: " + r.code())
			return nil
		}
		id := r.str("auth_req_id")
		exp, _ := r.Body["expires_in"].(float64)
		rec := &reqRecord{ID: id, Kind: kind, Plan: plan, Mode: c.mode, User: user, Call: call,
			ExpiresAt: ret.Add(time.Duration(exp) * time.Second)}
		if token != "" {
			l.rc.expect(id, token)
		}
		l.mu.Lock()
		l.reqs[id] = rec
		l.mu.Unlock()
		l.hist.add(histOp{ID: id, Client: n, In: linInput{Op: opAuthorize, Kind: kind, Expiry: time.Duration(exp) * time.Second},
			Out: linOutput{Out: outOK}, Call: call, Ret: ret})
		return rec
	}
	return nil
}

// backoff waits as a 503's Retry-After asks (capped), or briefly.
func backoff(r reply) {
	d := 300 * time.Millisecond
	if s, err := strconv.Atoi(r.Header.Get("Retry-After")); err == nil && s > 0 {
		d = min(time.Duration(s)*time.Second, 2*time.Second)
	}
	time.Sleep(d)
}

func (l *load) policyDeny(ctx context.Context) {
	v := url.Values{"scope": {"openid"}, "login_hint": {l.users[0]}, "authorization_details": {details["deny"]}}
	r := l.api.form(ctx, l.node(), "/bc-authorize", l.agents["poll"], v)
	switch {
	case r.Status == 403 && r.code() == "access_denied":
		l.count("policy denials (403 access_denied)")
	case r.unknownEffect():
		l.count("policy denial call failed by a fault")
	default:
		l.count(fmt.Sprintf("policy denial answered %d %s", r.Status, r.code()))
	}
}

// pollFlow: bc-authorize, poll to the end, then use the token.
func (l *load) pollFlow(ctx context.Context, n int, kind, plan string, expiry int) {
	c := l.agents["poll"]
	rec := l.authorize(ctx, n, c, kind, plan, expiry)
	if rec == nil {
		return
	}
	tok := l.pollToEnd(ctx, n, c, rec)
	if tok != "" {
		l.useToken(ctx, n, rec, tok)
	}
}

// pollToEnd polls /token at the interval until a token or a final error.
func (l *load) pollToEnd(ctx context.Context, n int, c *agent, rec *reqRecord) string {
	v := url.Values{"grant_type": {cibaGrant}, "auth_req_id": {rec.ID}}
	for ctx.Err() == nil {
		if time.Now().After(rec.ExpiresAt.Add(15 * time.Second)) {
			rec.note("", "gave_up")
			return ""
		}
		call := time.Now()
		r := l.api.form(ctx, l.node(), "/token", c, v)
		op := histOp{ID: rec.ID, Client: n, In: linInput{Op: opPoll}, Call: call, Ret: time.Now()}
		switch {
		case r.unknownEffect():
			op.Out.Out = outUnknown
			rec.mu.Lock()
			rec.UnknownPoll = true
			rec.mu.Unlock()
			l.hist.add(op)
			backoff(r)
			continue
		case r.Status == 200:
			op.Out = tokenOutput(r.str("access_token"))
			l.hist.add(op)
			rec.note(r.str("access_token"), "")
			return r.str("access_token")
		}
		op.Out.Out = r.code()
		switch r.code() {
		case outPending, outSlowDown:
			l.hist.add(op)
			time.Sleep(time.Second)
			continue
		case outDenied, outExpired, outGrant:
			l.hist.add(op)
			rec.note("", r.code())
			return ""
		}
		op.Out.Out = outNoEffect
		l.hist.add(op)
		rec.note("", "unexpected "+r.code())
		return ""
	}
	return ""
}

// tokenOutput reads the claims the model needs from an access token
// (signatures are checked after the run, against the JWKS).
func tokenOutput(at string) linOutput {
	cl := claims(at)
	ap, _ := cl["approval"].(map[string]any)
	by, _ := ap["by"].(string)
	dj, _ := ap["decision_jti"].(string)
	jti, _ := cl["jti"].(string)
	return linOutput{Out: outToken, JTI: jti, By: by, DJ: dj}
}

func claims(jwt string) map[string]any {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return nil
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil
	}
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m
}

// useToken introspects, revokes or exchanges the token, each recorded.
func (l *load) useToken(ctx context.Context, n int, rec *reqRecord, tok string) {
	jti, _ := claims(tok)["jti"].(string)
	switch x := mrand.IntN(100); {
	case x < 35:
		l.introspect(ctx, n, rec, tok, jti)
	case x < 60:
		l.revoke(ctx, n, rec, tok, jti)
		l.introspect(ctx, n, rec, tok, jti)
		l.exchange(ctx, n, rec, tok, jti)
	case x < 80 && rec.Kind != kindDevice:
		l.exchange(ctx, n, rec, tok, jti)
	}
}

func (l *load) introspect(ctx context.Context, n int, rec *reqRecord, tok, jti string) {
	call := time.Now()
	r := l.api.form(ctx, l.node(), "/introspect", l.agents["rs"], url.Values{"token": {tok}})
	op := histOp{ID: rec.ID, Client: n, In: linInput{Op: opIntrospect, JTI: jti}, Call: call, Ret: time.Now()}
	switch {
	case r.unknownEffect():
		op.Out.Out = outUnknown
	case r.Status == 200 && r.Body["active"] == true:
		op.Out.Out = outActive
	case r.Status == 200:
		op.Out.Out = outInactive
	default:
		op.Out.Out = outNoEffect
	}
	l.hist.add(op)
}

func (l *load) revoke(ctx context.Context, n int, rec *reqRecord, tok, jti string) {
	call := time.Now()
	r := l.api.form(ctx, l.node(), "/revoke", l.agents["poll"], url.Values{"token": {tok}, "token_type_hint": {"access_token"}})
	op := histOp{ID: rec.ID, Client: n, In: linInput{Op: opRevoke, JTI: jti}, Call: call, Ret: time.Now()}
	switch {
	case r.unknownEffect():
		op.Out.Out = outUnknown
	case r.Status == 200:
		op.Out.Out = outOK
	default:
		op.Out.Out = outNoEffect
	}
	l.hist.add(op)
}

func (l *load) exchange(ctx context.Context, n int, rec *reqRecord, tok, jti string) {
	call := time.Now()
	r := l.api.form(ctx, l.node(), "/token", l.agents["sub"], url.Values{"grant_type": {exchangeGrant},
		"subject_token": {tok}, "subject_token_type": {accessType}, "scope": {"openid"}})
	op := histOp{ID: rec.ID, Client: n, In: linInput{Op: opExchange, JTI: jti}, Call: call, Ret: time.Now()}
	switch {
	case r.unknownEffect():
		op.Out.Out = outUnknown
	case r.Status == 200:
		op.Out.Out = outOK
		l.count("token exchanges")
	case r.Status == 400:
		op.Out.Out = outRefused
		l.count("token exchanges refused: " + r.code())
	default:
		op.Out.Out = outNoEffect
	}
	l.hist.add(op)
}

// notifyFlow: a ping or push agent; waits for its callback (or expiry),
// and a ping agent then polls.
func (l *load) notifyFlow(ctx context.Context, n int, mode string) {
	kinds := []string{kindPolicy, kindContext, kindDevice, kindDevice}
	kind := kinds[mrand.IntN(len(kinds))]
	plan := "approve"
	if kind == kindDevice && mrand.IntN(3) == 0 {
		plan = "deny"
	}
	c := l.agents[mode]
	rec := l.authorize(ctx, n, c, kind, plan, 40)
	if rec == nil {
		return
	}
	// A ping agent polls anyway shortly before the expiry (CIBA Core
	// §10.2 lets it), so a lost ping does not cost its token.
	until := rec.ExpiresAt.Add(5 * time.Second)
	if mode == "ping" {
		until = rec.ExpiresAt.Add(-3 * time.Second)
	}
	for ctx.Err() == nil && len(l.rc.deliveries(rec.ID)) == 0 && time.Now().Before(until) {
		time.Sleep(100 * time.Millisecond)
	}
	if mode == "ping" {
		l.pollToEnd(ctx, n, c, rec)
	}
}
