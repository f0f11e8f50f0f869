package notify_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/countersign/countersign/notify"
)

var payload = []byte(`{"type":"approval_request","id":"req-1","binding_message":"Pay 25000 EUR","agent":{"client_id":"a1"},"summary":"transfer","risk":{"level":"high"},"expires_at":"2026-01-15T12:05:00Z"}`)

func TestSendDeliversEncryptedSignedMessage(t *testing.T) {
	for _, subscriber := range []string{"ops@example.com", "mailto:ops@example.com"} {
		t.Run(subscriber, func(t *testing.T) {
			p := newPusher(t)
			p.Subscriber = subscriber
			ps := newPushService(t, p.Keys.Public)
			r := p.Send(context.Background(), ps.subscription(), notify.Message{
				Payload: payload, TTL: 90 * time.Second, Topic: "req-1_ABC", Urgency: "high",
			})
			if r.Outcome != notify.Delivered || r.Status != http.StatusCreated || r.Err != nil {
				t.Fatalf("Send = %+v, want Delivered 201", r)
			}
			got := ps.requests()
			if len(got) != 1 {
				t.Fatalf("push service got %d requests, want 1", len(got))
			}
			g := got[0]
			if g.problem != "" {
				t.Fatalf("push service refused: %s", g.problem)
			}
			if !bytes.Equal(g.plaintext, payload) {
				t.Errorf("decrypted %q, want %q", g.plaintext, payload)
			}
			if g.ttl != "90" || g.urgency != "high" || g.topic != "req-1_ABC" {
				t.Errorf("headers TTL=%q Urgency=%q Topic=%q, want 90 high req-1_ABC", g.ttl, g.urgency, g.topic)
			}
			if g.sub != "mailto:ops@example.com" {
				t.Errorf("VAPID sub = %q, want mailto:ops@example.com", g.sub)
			}
		})
	}
}

func TestSendOmitsOptionalHeaders(t *testing.T) {
	p := newPusher(t)
	ps := newPushService(t, p.Keys.Public)
	r := p.Send(context.Background(), ps.subscription(), notify.Message{Payload: []byte("{}")})
	if r.Outcome != notify.Delivered {
		t.Fatalf("Send = %+v", r)
	}
	g := ps.requests()[0]
	if g.problem != "" || g.ttl != "0" || g.urgency != "" || g.topic != "" || string(g.plaintext) != "{}" {
		t.Errorf("got %+v, want TTL 0, no Urgency/Topic, plaintext {}", g)
	}
}

// The fake push service must refuse what it cannot verify, or the tests
// above prove nothing.
func TestPushServiceRefusesWrongKeys(t *testing.T) {
	p := newPusher(t)
	ps := newPushService(t, p.Keys.Public)
	other := newPushService(t, p.Keys.Public)
	sub := ps.subscription()
	sub.Keys = other.subscription().Keys // encrypted for another receiver
	r := p.Send(context.Background(), sub, notify.Message{Payload: payload})
	if r.Outcome != notify.Failed || r.Status != http.StatusBadRequest {
		t.Fatalf("Send = %+v, want Failed 400", r)
	}
	if got := ps.requests(); len(got) != 1 || !strings.HasPrefix(got[0].problem, "decrypt:") {
		t.Errorf("push service saw %+v, want a decrypt failure", got)
	}

	// Signed by a VAPID key other than the one the subscription expects.
	intruder := newPusher(t)
	ps2 := newPushService(t, p.Keys.Public)
	r = intruder.Send(context.Background(), ps2.subscription(), notify.Message{Payload: payload})
	if r.Outcome != notify.Failed {
		t.Fatalf("Send by another VAPID key = %+v, want Failed", r)
	}
	if got := ps2.requests(); len(got) != 1 || !strings.HasPrefix(got[0].problem, "VAPID k") {
		t.Errorf("push service saw %+v, want a VAPID key mismatch", got)
	}
}

func TestSendClassifiesStatus(t *testing.T) {
	cases := []struct {
		status int
		want   notify.Outcome
	}{
		{http.StatusOK, notify.Delivered},
		{http.StatusAccepted, notify.Delivered},
		{http.StatusNotFound, notify.Gone},
		{http.StatusGone, notify.Gone},
		{http.StatusTooManyRequests, notify.Retry},
		{http.StatusInternalServerError, notify.Retry},
		{http.StatusServiceUnavailable, notify.Retry},
		{http.StatusBadRequest, notify.Failed},
		{http.StatusUnauthorized, notify.Failed},
		{http.StatusForbidden, notify.Failed},
		{http.StatusRequestEntityTooLarge, notify.Failed},
		{http.StatusMovedPermanently, notify.Failed},
	}
	p := newPusher(t)
	for _, c := range cases {
		ps := newPushService(t, p.Keys.Public, reply{status: c.status})
		r := p.Send(context.Background(), ps.subscription(), notify.Message{Payload: payload})
		if r.Outcome != c.want || r.Status != c.status {
			t.Errorf("status %d: got %v/%d, want %v", c.status, r.Outcome, r.Status, c.want)
		}
		var se *notify.StatusError
		if c.want != notify.Delivered && (!errors.As(r.Err, &se) || se.Status != c.status) {
			t.Errorf("status %d: Err = %v, want a StatusError", c.status, r.Err)
		}
	}
}

func TestSendParsesRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 15, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		header string
		want   time.Duration
	}{
		{"7", 7 * time.Second},
		{now.Add(2 * time.Minute).Format(http.TimeFormat), 2 * time.Minute},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{"-3", 0},
		{"soon", 0},
	}
	p := newPusher(t)
	p.Now = func() time.Time { return now }
	for _, c := range cases {
		ps := newPushService(t, p.Keys.Public, reply{status: 503, retryAfter: c.header})
		r := p.Send(context.Background(), ps.subscription(), notify.Message{Payload: payload})
		if r.Outcome != notify.Retry || r.RetryAfter != c.want {
			t.Errorf("Retry-After %q: got %v %v, want Retry %v", c.header, r.Outcome, r.RetryAfter, c.want)
		}
	}
}

func TestSendRefusesBadMessages(t *testing.T) {
	p := newPusher(t)
	ps := newPushService(t, p.Keys.Public)
	cases := map[string]notify.Message{
		"topic too long":      {Payload: payload, Topic: strings.Repeat("a", 33)},
		"topic not base64url": {Payload: payload, Topic: "req=1"},
		"unknown urgency":     {Payload: payload, Urgency: "urgent"},
		"negative TTL":        {Payload: payload, TTL: -time.Second},
		"payload too large":   {Payload: make([]byte, notify.MaxPayload+1)},
	}
	for name, m := range cases {
		if r := p.Send(context.Background(), ps.subscription(), m); r.Outcome != notify.Failed || r.Status != 0 || r.Err == nil {
			t.Errorf("%s: Send = %+v, want Failed before sending", name, r)
		}
	}
	bad := ps.subscription()
	bad.Keys.Auth = "c2hvcnQ" // 5 bytes
	if r := p.Send(context.Background(), bad, notify.Message{Payload: payload}); r.Outcome != notify.Failed {
		t.Errorf("short auth secret: Send = %+v, want Failed", r)
	}
	if n := len(ps.requests()); n != 0 {
		t.Errorf("push service got %d requests, want 0", n)
	}
	// The largest payload that fits one record is sent and decrypts.
	big := bytes.Repeat([]byte("x"), notify.MaxPayload)
	if r := p.Send(context.Background(), ps.subscription(), notify.Message{Payload: big}); r.Outcome != notify.Delivered {
		t.Fatalf("MaxPayload: Send = %+v, want Delivered", r)
	}
	if got := ps.requests(); len(got) != 1 || got[0].problem != "" || !bytes.Equal(got[0].plaintext, big) {
		t.Errorf("MaxPayload payload did not arrive intact")
	}
}

func TestSendRetryHonoursRetryAfter(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 1, 15, 12, 0, 0, 0, time.UTC)}
	p := newPusher(t)
	p.Now, p.Sleep = clock.Now, clock.Sleep
	ps := newPushService(t, p.Keys.Public, reply{status: 429, retryAfter: "7"})
	r := p.SendRetry(context.Background(), ps.subscription(), notify.Message{Payload: payload, TTL: time.Minute}, clock.Now().Add(time.Minute))
	if r.Outcome != notify.Delivered || r.Status != http.StatusCreated {
		t.Fatalf("SendRetry = %+v, want Delivered", r)
	}
	if len(clock.sleeps) != 1 || clock.sleeps[0] != 7*time.Second {
		t.Errorf("slept %v, want [7s] (Retry-After over a 0-200ms backoff)", clock.sleeps)
	}
	got := ps.requests()
	if len(got) != 2 || got[1].problem != "" || !bytes.Equal(got[1].plaintext, payload) {
		t.Fatalf("push service got %d requests, want 2 with the payload", len(got))
	}
	// RFC 8030 §5.2: the retry carries what is left of the TTL.
	if got[0].ttl != "60" || got[1].ttl != "53" {
		t.Errorf("TTL headers %q, %q, want 60, 53", got[0].ttl, got[1].ttl)
	}
}

func TestSendRetryBacksOffOn5xx(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 1, 15, 12, 0, 0, 0, time.UTC)}
	p := newPusher(t)
	p.Now, p.Sleep = clock.Now, clock.Sleep
	ps := newPushService(t, p.Keys.Public, reply{status: 500}, reply{status: 503}, reply{status: 502})
	r := p.SendRetry(context.Background(), ps.subscription(), notify.Message{Payload: payload}, clock.Now().Add(time.Hour))
	if r.Outcome != notify.Delivered {
		t.Fatalf("SendRetry = %+v, want Delivered", r)
	}
	if n := len(ps.requests()); n != 4 {
		t.Errorf("push service got %d requests, want 4", n)
	}
	if len(clock.sleeps) != 3 {
		t.Fatalf("slept %v, want 3 waits", clock.sleeps)
	}
	for i, d := range clock.sleeps {
		if ceiling := 200 * time.Millisecond << i; d < 0 || d > ceiling {
			t.Errorf("wait %d = %v, want within [0, %v]", i, d, ceiling)
		}
	}
}

func TestSendRetryStopsAtDeadlineAndOnPermanentOutcomes(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 1, 15, 12, 0, 0, 0, time.UTC)}
	p := newPusher(t)
	p.Now, p.Sleep = clock.Now, clock.Sleep
	ps := newPushService(t, p.Keys.Public, reply{status: 503, retryAfter: "60"}, reply{status: 503})
	r := p.SendRetry(context.Background(), ps.subscription(), notify.Message{Payload: payload}, clock.Now().Add(30*time.Second))
	if r.Outcome != notify.Retry || r.RetryAfter != time.Minute || len(clock.sleeps) != 0 || len(ps.requests()) != 1 {
		t.Errorf("SendRetry past deadline = %+v after %d requests, %v sleeps; want one Retry, no sleep", r, len(ps.requests()), clock.sleeps)
	}

	ps = newPushService(t, p.Keys.Public, reply{status: 410})
	if r := p.SendRetry(context.Background(), ps.subscription(), notify.Message{Payload: payload}, clock.Now().Add(time.Hour)); r.Outcome != notify.Gone || len(ps.requests()) != 1 {
		t.Errorf("SendRetry on 410 = %+v after %d requests, want Gone after 1", r, len(ps.requests()))
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ps = newPushService(t, p.Keys.Public)
	if r := p.SendRetry(ctx, ps.subscription(), notify.Message{Payload: payload}, clock.Now().Add(time.Hour)); r.Outcome != notify.Retry || !errors.Is(r.Err, context.Canceled) {
		t.Errorf("SendRetry with a cancelled context = %+v, want Retry with context.Canceled", r)
	}
}

func TestSendTimeoutAndConnectionErrorsAreRetry(t *testing.T) {
	p := newPusher(t)
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(release) })
	ps := newPushService(t, p.Keys.Public)
	sub := ps.subscription()
	sub.Endpoint = slow.URL + "/push/sub-1"
	p.Client = devClient(100 * time.Millisecond)
	if r := p.Send(context.Background(), sub, notify.Message{Payload: payload}); r.Outcome != notify.Retry || r.Status != 0 || r.Err == nil {
		t.Errorf("timeout: Send = %+v, want Retry with no status", r)
	}

	closed := httptest.NewServer(http.NotFoundHandler())
	sub.Endpoint = closed.URL + "/push/sub-1"
	closed.Close()
	if r := p.Send(context.Background(), sub, notify.Message{Payload: payload}); r.Outcome != notify.Retry || r.Status != 0 {
		t.Errorf("connection refused: Send = %+v, want Retry", r)
	}
}

func TestSendDefaultClientRefusesLoopback(t *testing.T) {
	p := newPusher(t)
	p.Client = nil // production policy
	ps := newPushService(t, p.Keys.Public)
	r := p.Send(context.Background(), ps.subscription(), notify.Message{Payload: payload})
	if r.Outcome != notify.Failed || !errors.Is(r.Err, notify.ErrForbiddenEndpoint) {
		t.Errorf("Send = %+v, want Failed with ErrForbiddenEndpoint", r)
	}
	if n := len(ps.requests()); n != 0 {
		t.Errorf("push service got %d requests, want 0", n)
	}
}

func TestVAPIDKeys(t *testing.T) {
	a, err := notify.GenerateVAPIDKeys()
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Validate(); err != nil {
		t.Errorf("fresh pair: %v", err)
	}
	b, _ := notify.GenerateVAPIDKeys()
	if err := (notify.VAPIDKeys{Public: b.Public, Private: a.Private}).Validate(); err == nil {
		t.Error("mismatched pair validated")
	}
	if err := (notify.VAPIDKeys{Public: a.Public, Private: "!!"}).Validate(); err == nil {
		t.Error("garbage private key validated")
	}
}

func TestOutcomeString(t *testing.T) {
	want := map[notify.Outcome]string{notify.Delivered: "delivered", notify.Gone: "gone", notify.Retry: "retry", notify.Failed: "failed", 0: "outcome(0)"}
	for o, s := range want {
		if o.String() != s {
			t.Errorf("%d.String() = %q, want %q", int(o), o.String(), s)
		}
	}
}

func TestBackoff(t *testing.T) {
	for attempt := -1; attempt < 40; attempt++ {
		ceiling := 30 * time.Second
		if attempt >= 0 && attempt < 8 {
			ceiling = 200 * time.Millisecond << attempt
		} else if attempt < 0 {
			ceiling = 200 * time.Millisecond
		}
		seen := map[time.Duration]bool{}
		for range 200 {
			d := notify.Backoff(attempt)
			if d < 0 || d > ceiling {
				t.Fatalf("Backoff(%d) = %v, want within [0, %v]", attempt, d, ceiling)
			}
			seen[d] = true
		}
		if len(seen) < 2 {
			t.Errorf("Backoff(%d) returned one value 200 times: no jitter", attempt)
		}
	}
}

// webpush-go pads the message in place; a payload with spare capacity,
// shared by pushes to several devices, must not be written to.
func TestSendLeavesCallersPayloadUntouched(t *testing.T) {
	p := newPusher(t)
	ps := newPushService(t, p.Keys.Public)
	buf := make([]byte, len(payload), len(payload)+64)
	copy(buf, payload)
	spare := buf[len(payload):cap(buf)]
	for i := range spare {
		spare[i] = 0xAA
	}
	if r := p.Send(context.Background(), ps.subscription(), notify.Message{Payload: buf, TTL: time.Minute}); r.Outcome != notify.Delivered {
		t.Fatalf("Send = %+v", r)
	}
	if !bytes.Equal(buf, payload) {
		t.Fatalf("payload changed: %q", buf)
	}
	for i, b := range spare {
		if b != 0xAA {
			t.Fatalf("spare capacity written at %d", i)
		}
	}
}
