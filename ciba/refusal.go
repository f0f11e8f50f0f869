package ciba

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/countersign/countersign/ciba/oauth"
	"github.com/countersign/countersign/ciba/store"
)

// Refusals leave a trace in two ways, depending on whether the caller was
// identified.
//
// Once the caller is identified (a client authenticated, a device
// authenticated), a refusal is an audit event of type <flow>.refused in the
// audit chain: request.refused (/bc-authorize), token.refused (the CIBA
// grant), exchange.refused (token exchange), revocation.refused,
// introspection.refused, decision.refused (a device's decision) and
// device.refused (the device's other calls). It
// names the agent, the user where known, the device, the OAuth error code
// and its description, and the caller's IP; never a secret or a token.
// Each flow keeps a *refusal up to date as it learns who is calling, and
// its deferred s.refused writes the event when it returns an
// *oauth.Error; a successful answer costs nothing more.
//
// Before identification (a bad admin token, an unknown client, a failed
// device authentication) there is nobody to audit against: the failure is
// logged at WARN, at most failLogN lines per kind a minute with a count of
// the lines left out, and counted (Failures, countersign_auth_failures_total).
//
// A wrong credential for a client that exists is both: logged and counted
// as an authentication failure, and audited as a refusal against that
// client with the error invalid_client and a description that says it was
// not authenticated, because the owner of the client should see that
// someone tries its id. Since anyone can name a client, these events are
// limited per client and node (failAuditN a minute); the metric counts all.
type refusal struct {
	typ      string // the audit event type
	endpoint string // the metrics label
	ip       string
	agent    string // the authenticated client, "" before authentication
	user     string
	device   string // the authenticated device
	request  string // a request of the device's user
	actors   []string
	audited  bool // the flow audited this outcome itself (a policy denial)
}

// Limits of the traces left by unidentified callers, per node and minute.
const (
	failLogN   = 10 // WARN lines per endpoint and reason
	failAuditN = 20 // audited authentication failures per registered client
)

// AuthFailures counts failures before the caller is identified.
type AuthFailures interface {
	AuthFailure(endpoint, reason string)
}

// authFailure is a failed authentication: the answer, why in one word (a
// metrics label), and the registered client the credentials named (nil
// when none).
type authFailure struct {
	err    *oauth.Error
	reason string
	client *store.Client
	claim  string // the identifier the caller claimed
}

func (f *authFailure) Error() string { return f.err.Error() }
func (f *authFailure) Unwrap() error { return f.err }

// clientAuthFailure classifies a failed client authentication.
func clientAuthFailure(err error, c string, method string, cl *store.Client) error {
	var oe *oauth.Error
	if !errors.As(err, &oe) {
		return err
	}
	f := &authFailure{err: oe, reason: "bad_credentials", client: cl, claim: c}
	switch {
	case cl == nil:
		f.reason = "unknown_client"
	case cl.Disabled:
		f.reason = "disabled_client"
	case cl.AuthMethod != method:
		f.reason = "wrong_method"
	}
	return f
}

// refused records err, the answer of a flow to r's caller, and returns the
// error to answer with.
func (s *Service) refused(ctx context.Context, r *refusal, err error) error {
	if err == nil {
		return nil
	}
	var f *authFailure
	if errors.As(err, &f) {
		s.AuthFailed(r.endpoint, f.reason, r.ip, "client_id", clip(f.claim))
		if f.client != nil && s.failAudit.allow(f.client.ID, s.Now()) {
			r.agent = f.client.ID
			s.auditRefusal(ctx, r, f.err.Code, "not authenticated: "+f.err.Description)
		}
		return f.err
	}
	var oe *oauth.Error
	if r.audited || r.agent == "" && r.device == "" || !errors.As(err, &oe) || !isRefusal(r.typ, oe) {
		return err
	}
	s.auditRefusal(ctx, r, oe.Code, oe.Description)
	return err
}

// isRefusal tells refusals from the normal course of the protocol: a poll
// before the decision, too early, after expiry or after the user's denial
// (audited when it happened), a DPoP nonce challenge, and our own failures.
func isRefusal(typ string, e *oauth.Error) bool {
	switch e.Code {
	case oauth.UseDPoPNonce:
		return false
	case oauth.AuthorizationPending, oauth.ExpiredToken, oauth.AccessDenied:
		return typ != "token.refused"
	case oauth.SlowDown:
		return e.Status == 429 // the push-bombing cap, not a poll too fast (CIBA Core §11)
	}
	return e.Status < 500
}

func (s *Service) auditRefusal(ctx context.Context, r *refusal, code, why string) {
	// The answer is on its way whatever happens here: a client that hangs
	// up does not get its refusal forgotten.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	ev := store.Event{At: s.Now(), Type: r.typ, User: r.user, Agent: r.agent, Actors: r.actors, DeviceID: r.device,
		RequestID: r.request, IP: r.ip, Error: code, Detail: why}
	if err := s.db.Audit(ctx, r.user, ev); err != nil {
		s.Log.Error("refusal not audited", "type", r.typ, "agent", r.agent, "user", r.user, "error", code, "err", err)
	}
}

// AuthFailed reports a failure before the caller is identified at endpoint
// (a metrics label, like reason): counted every time, logged at WARN
// within failLogN lines a minute per endpoint and reason.
func (s *Service) AuthFailed(endpoint, reason, ip string, attrs ...any) {
	if s.Failures != nil {
		s.Failures.AuthFailure(endpoint, reason)
	}
	ok, left := s.failLog.allowN(endpoint+" "+reason, s.Now(), failLogN)
	if !ok {
		return
	}
	args := append([]any{"endpoint", endpoint, "reason", reason, "ip", ip}, attrs...)
	if left > 0 {
		args = append(args, "suppressed", left)
	}
	s.Log.Warn("authentication failed", args...)
}

// clip bounds a caller-chosen identifier in a log line.
func clip(s string) string {
	if len(s) > 128 {
		return s[:128] + "…"
	}
	return s
}

// limiter lets n events per key and minute through and counts the others.
// It keeps one minute's keys: at most as many as there are distinct keys
// in a minute, and it forgets them all past 10,000.
type limiter struct {
	mu    sync.Mutex
	start time.Time
	seen  map[string]*window
}

type window struct{ used, left int }

func (l *limiter) allow(key string, now time.Time) bool {
	ok, _ := l.allowN(key, now, failAuditN)
	return ok
}

// allowN reports whether the event passes and how many of its key were
// left out since the last one that passed.
func (l *limiter) allowN(key string, now time.Time, n int) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen == nil || now.Sub(l.start) >= time.Minute || now.Before(l.start) || len(l.seen) > 10000 {
		carried := map[string]*window{}
		for k, w := range l.seen {
			if w.left > 0 && len(carried) < 10000 {
				carried[k] = &window{left: w.left}
			}
		}
		l.start, l.seen = now, carried
	}
	w := l.seen[key]
	if w == nil {
		w = &window{}
		l.seen[key] = w
	}
	if w.used >= n {
		w.left++
		return false, 0
	}
	w.used++
	left := w.left
	w.left = 0
	return true, left
}

// deviceRefusal starts the refusal of a call by an authenticated device
// (type device.refused).
func deviceRefusal(ctx context.Context, dev *store.Device) *refusal {
	return &refusal{typ: "device.refused", endpoint: "device", ip: clientIP(ctx), user: dev.UserID, device: dev.ID}
}

type ipKey struct{}

// WithClientIP returns ctx carrying the caller's IP address, for the
// traces of flows whose input has no IP member (the device API).
func WithClientIP(ctx context.Context, ip string) context.Context {
	return context.WithValue(ctx, ipKey{}, ip)
}

func clientIP(ctx context.Context) string {
	ip, _ := ctx.Value(ipKey{}).(string)
	return ip
}
