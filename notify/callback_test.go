package notify_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/countersign/countersign/notify"
)

const notificationToken = "8d67dc78-7faa-4d41-aabd-67707b374255"

// agent is a fake CIBA client notification endpoint: it checks the bearer
// token, the content type and the body of every callback and answers with
// the scripted statuses (204 once the script runs out).
type agent struct {
	srv      *httptest.Server
	wantBody string
	location string

	mu       sync.Mutex
	script   []int
	calls    int
	problems []string
}

func newAgent(t *testing.T, wantBody string, script ...int) *agent {
	t.Helper()
	a := &agent{wantBody: wantBody, script: script}
	a.srv = httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *agent) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls++
	// CIBA Core §10.2: the client_notification_token as a bearer token.
	if got := r.Header.Get("Authorization"); got != "Bearer "+notificationToken {
		a.problems = append(a.problems, "Authorization "+got)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		a.problems = append(a.problems, "Content-Type "+ct)
	}
	if r.Method != http.MethodPost || string(body) != a.wantBody {
		a.problems = append(a.problems, r.Method+" "+string(body))
	}
	status := http.StatusNoContent
	if len(a.script) > 0 {
		status, a.script = a.script[0], a.script[1:]
	}
	if a.location != "" {
		w.Header().Set("Location", a.location)
	}
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "5")
	}
	w.WriteHeader(status)
}

func (a *agent) seen() (int, []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.calls, append([]string(nil), a.problems...)
}

const pingBody = `{"auth_req_id":"1c266114-a1be-4252-8ad1-04986c5b9ac1"}`

func TestCallbackRetriedUntilDelivered(t *testing.T) {
	a := newAgent(t, pingBody, 500, 500, 200)
	cb := &notify.Callback{Client: devClient(5 * time.Second)}
	var results []notify.Result
	// The caller's outbox loop: retry while the outcome says so.
	for range 5 {
		r := cb.Post(context.Background(), a.srv.URL+"/cb", notificationToken, []byte(pingBody))
		results = append(results, r)
		if r.Outcome != notify.Retry {
			break
		}
	}
	if len(results) != 3 || results[2].Outcome != notify.Delivered || results[2].Status != 200 {
		t.Fatalf("results %+v, want Retry, Retry, Delivered 200", results)
	}
	for _, r := range results[:2] {
		if r.Outcome != notify.Retry || r.Status != 500 {
			t.Errorf("first attempts %+v, want Retry 500", r)
		}
	}
	if calls, problems := a.seen(); calls != 3 || len(problems) != 0 {
		t.Errorf("agent saw %d calls, problems %v; want 3, none", calls, problems)
	}
}

func TestCallbackClassifiesStatus(t *testing.T) {
	cases := []struct {
		status     int
		want       notify.Outcome
		retryAfter time.Duration
	}{
		{http.StatusOK, notify.Delivered, 0},
		{http.StatusNoContent, notify.Delivered, 0},
		{http.StatusUnauthorized, notify.Failed, 0}, // docs/api.md: 401 is not retried
		{http.StatusBadRequest, notify.Failed, 0},
		{http.StatusNotFound, notify.Failed, 0},
		{http.StatusTooManyRequests, notify.Failed, 0}, // docs/api.md: a 4xx is final
		{http.StatusInternalServerError, notify.Retry, 0},
		{http.StatusServiceUnavailable, notify.Retry, 5 * time.Second},
	}
	cb := &notify.Callback{Client: devClient(5 * time.Second)}
	for _, c := range cases {
		a := newAgent(t, pingBody, c.status)
		r := cb.Post(context.Background(), a.srv.URL, notificationToken, []byte(pingBody))
		if r.Outcome != c.want || r.Status != c.status || r.RetryAfter != c.retryAfter {
			t.Errorf("status %d: got %+v, want %v retry-after %v", c.status, r, c.want, c.retryAfter)
		}
		if calls, problems := a.seen(); calls != 1 || len(problems) != 0 {
			t.Errorf("status %d: agent saw %d calls, problems %v", c.status, calls, problems)
		}
	}
}

func TestCallbackDoesNotFollowRedirects(t *testing.T) {
	target := newAgent(t, pingBody)
	for _, status := range []int{http.StatusMovedPermanently, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		a := newAgent(t, pingBody, status)
		a.location = target.srv.URL + "/elsewhere"
		r := (&notify.Callback{Client: devClient(5 * time.Second)}).Post(context.Background(), a.srv.URL, notificationToken, []byte(pingBody))
		if r.Outcome != notify.Failed || r.Status != status {
			t.Errorf("%d: got %+v, want Failed %d", status, r, status)
		}
	}
	// Not even with a client that would follow them.
	a := newAgent(t, pingBody, http.StatusFound)
	a.location = target.srv.URL + "/elsewhere"
	if r := (&notify.Callback{Client: &http.Client{}}).Post(context.Background(), a.srv.URL, notificationToken, []byte(pingBody)); r.Outcome != notify.Failed || r.Status != http.StatusFound {
		t.Errorf("302 with a plain client: got %+v, want Failed 302", r)
	}
	if calls, _ := target.seen(); calls != 0 {
		t.Errorf("redirect target got %d requests, want 0", calls)
	}
}

func TestCallbackTimeoutAndRefusals(t *testing.T) {
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-release }))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(release) })
	cb := &notify.Callback{Client: devClient(100 * time.Millisecond)}
	if r := cb.Post(context.Background(), slow.URL, notificationToken, []byte(pingBody)); r.Outcome != notify.Retry || r.Status != 0 || r.Err == nil {
		t.Errorf("timeout: got %+v, want Retry", r)
	}

	a := newAgent(t, pingBody)
	if r := (&notify.Callback{}).Post(context.Background(), a.srv.URL, notificationToken, []byte(pingBody)); r.Outcome != notify.Failed || !errors.Is(r.Err, notify.ErrForbiddenEndpoint) {
		t.Errorf("default client to http loopback: got %+v, want Failed forbidden", r)
	}
	if r := cb.Post(context.Background(), a.srv.URL, "", []byte(pingBody)); r.Outcome != notify.Failed {
		t.Errorf("empty bearer: got %+v, want Failed", r)
	}
	if calls, _ := a.seen(); calls != 0 {
		t.Errorf("agent got %d requests, want 0", calls)
	}
}
