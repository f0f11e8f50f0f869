package notify_test

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/countersign/countersign/mobile-stub/phone"
	"github.com/countersign/countersign/notify"
)

// pushService is a fake RFC 8030 push service: it verifies every request
// the way a real one (and the phone behind it) would, decrypts the body with
// the subscription's private keys, records what it got, and answers with
// the scripted statuses (201 once the script runs out).
type pushService struct {
	t        *testing.T
	srv      *httptest.Server
	priv     *ecdh.PrivateKey
	auth     []byte
	vapidPub string // the VAPID key the server must sign with
	now      func() time.Time

	mu       sync.Mutex
	script   []reply
	received []received
}

type reply struct {
	status     int
	retryAfter string
}

// received is one request as the push service saw it.
type received struct {
	plaintext []byte
	ttl       string
	urgency   string
	topic     string
	sub       string // the VAPID JWT's sub claim
	problem   string // why the request was refused, "" when it verified
}

func newPushService(t *testing.T, vapidPub string, script ...reply) *pushService {
	t.Helper()
	priv, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	auth := make([]byte, 16)
	_, _ = rand.Read(auth)
	ps := &pushService{t: t, priv: priv, auth: auth, vapidPub: vapidPub, now: time.Now, script: script}
	ps.srv = httptest.NewServer(http.HandlerFunc(ps.serve))
	t.Cleanup(ps.srv.Close)
	return ps
}

// subscription is what the phone would have registered with the server.
func (ps *pushService) subscription() notify.Subscription {
	var s notify.Subscription
	s.Endpoint = ps.srv.URL + "/push/sub-1"
	s.Keys.P256dh = base64.RawURLEncoding.EncodeToString(ps.priv.PublicKey().Bytes())
	s.Keys.Auth = base64.RawURLEncoding.EncodeToString(ps.auth)
	return s
}

func (ps *pushService) serve(w http.ResponseWriter, r *http.Request) {
	rec := ps.check(r)
	ps.mu.Lock()
	ps.received = append(ps.received, rec)
	next := reply{status: http.StatusCreated}
	if len(ps.script) > 0 {
		next, ps.script = ps.script[0], ps.script[1:]
	}
	ps.mu.Unlock()
	if rec.problem != "" {
		http.Error(w, rec.problem, http.StatusBadRequest)
		return
	}
	if next.retryAfter != "" {
		w.Header().Set("Retry-After", next.retryAfter)
	}
	if next.status == http.StatusCreated {
		w.Header().Set("Location", "/message/1") // RFC 8030 §5
	}
	w.WriteHeader(next.status)
}

// check verifies one push request and decrypts it.
func (ps *pushService) check(r *http.Request) received {
	rec := received{ttl: r.Header.Get("TTL"), urgency: r.Header.Get("Urgency"), topic: r.Header.Get("Topic")}
	fail := func(format string, args ...any) received {
		rec.problem = fmt.Sprintf(format, args...)
		return rec
	}
	if r.Method != http.MethodPost || r.URL.Path != "/push/sub-1" {
		return fail("unexpected %s %s", r.Method, r.URL.Path)
	}
	if _, ok := r.Header["Ttl"]; !ok {
		return fail("no TTL header (RFC 8030 §5.2)")
	}
	if ce := r.Header.Get("Content-Encoding"); ce != "aes128gcm" {
		return fail("Content-Encoding %q", ce)
	}
	auth := r.Header.Get("Authorization")
	k, err := phone.VerifyVAPID(auth, ps.srv.URL+r.URL.Path, ps.now())
	if err != nil {
		return fail("VAPID: %v", err)
	}
	if k != ps.vapidPub {
		return fail("VAPID k %q, want %q", k, ps.vapidPub)
	}
	rec.sub = jwtClaim(auth, "sub")
	body, err := io.ReadAll(io.LimitReader(r.Body, 8192))
	if err != nil {
		return fail("body: %v", err)
	}
	plain, err := phone.DecryptPush(body, ps.priv, ps.auth)
	if err != nil {
		return fail("decrypt: %v", err)
	}
	rec.plaintext = plain
	return rec
}

func (ps *pushService) requests() []received {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return append([]received(nil), ps.received...)
}

// jwtClaim reads one claim of the (already verified) JWT in a vapid header.
func jwtClaim(header, name string) string {
	_, rest, _ := strings.Cut(header, "t=")
	token, _, _ := strings.Cut(rest, ",")
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return ""
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var claims map[string]any
	if json.Unmarshal(raw, &claims) != nil {
		return ""
	}
	s, _ := claims[name].(string)
	return s
}

// devClient is what a development-mode server would use: http and loopback
// allowed.
func devClient(timeout time.Duration) *http.Client {
	return notify.EndpointPolicy{AllowHTTP: true, AllowPrivate: true}.Client(timeout)
}

// newPusher returns a Pusher with fresh VAPID keys and a dev-mode client.
func newPusher(t testing.TB) *notify.Pusher {
	t.Helper()
	keys, err := notify.GenerateVAPIDKeys()
	if err != nil {
		t.Fatal(err)
	}
	return &notify.Pusher{Keys: keys, Subscriber: "ops@example.com", Client: devClient(5 * time.Second)}
}

// fakeClock is a settable clock whose Sleep advances it and records waits.
type fakeClock struct {
	mu     sync.Mutex
	t      time.Time
	sleeps []time.Duration
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sleeps = append(c.sleeps, d)
	c.t = c.t.Add(d)
	return ctx.Err()
}
