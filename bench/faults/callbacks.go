package main

import (
	"crypto/subtle"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// receiver is the agents' callback endpoint (CIBA Core §10): it records
// every ping and push, and while faulty it answers 5xx, hangs or resets
// the connection at random instead.
type receiver struct {
	srv    *http.Server
	ln     net.Listener
	faulty atomic.Bool

	mu       sync.Mutex
	tokens   map[string]string // auth_req_id -> client_notification_token
	got      map[string][]delivery
	failed   map[string]int // callbacks refused while faulty, per auth_req_id
	sabotage map[string]int // 5xx / hang / reset counts
	badAuth  int
	attempts map[string][]string // auth_req_id -> "time outcome" of every call
	arrived  chan string
}

type delivery struct {
	At   time.Time
	Body map[string]any
}

func startReceiver() (*receiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	rc := &receiver{ln: ln, tokens: map[string]string{}, got: map[string][]delivery{},
		failed: map[string]int{}, sabotage: map[string]int{}, attempts: map[string][]string{}, arrived: make(chan string, 4096)}
	rc.srv = &http.Server{Handler: rc, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = rc.srv.Serve(ln) }()
	return rc, nil
}

func (rc *receiver) url() string { return "http://" + rc.ln.Addr().String() + "/cb" }

// expect registers the notification token sent with a request.
func (rc *receiver) expect(authReqID, token string) {
	rc.mu.Lock()
	rc.tokens[authReqID] = token
	rc.mu.Unlock()
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	var msg map[string]any
	_ = json.Unmarshal(body, &msg)
	id, _ := msg["auth_req_id"].(string)
	if rc.faulty.Load() && rand.IntN(10) < 7 {
		rc.sabotageCall(w, r, id)
		return
	}
	rc.mu.Lock()
	rc.attempts[id] = append(rc.attempts[id], time.Now().Format("15:04:05.000")+" answered")
	want, known := rc.tokens[id]
	ok := known && subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte("Bearer "+want)) == 1
	if !ok {
		rc.badAuth++
		rc.mu.Unlock()
		if !known {
			// The flow registers the token once bc-authorize returns; a
			// policy approval can call back first. 503: the server retries.
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	rc.got[id] = append(rc.got[id], delivery{At: time.Now(), Body: msg})
	rc.mu.Unlock()
	select {
	case rc.arrived <- id:
	default:
	}
	w.WriteHeader(http.StatusNoContent)
}

// sabotageCall fails one callback: a 5xx, a hang past the notifier's
// timeout, or a TCP reset.
func (rc *receiver) sabotageCall(w http.ResponseWriter, r *http.Request, id string) {
	kind := []string{"5xx", "hang", "reset"}[rand.IntN(3)]
	rc.mu.Lock()
	rc.failed[id]++
	rc.sabotage[kind]++
	rc.attempts[id] = append(rc.attempts[id], time.Now().Format("15:04:05.000")+" "+kind)
	rc.mu.Unlock()
	switch kind {
	case "5xx":
		w.WriteHeader([]int{500, 502, 503}[rand.IntN(3)])
	case "hang":
		// Hang until the notifier gives up (its timeout is 10 s) and
		// hangs up; a hang never ends in a success.
		select {
		case <-r.Context().Done():
		case <-time.After(30 * time.Second):
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	case "reset":
		hj, ok := w.(http.Hijacker)
		if !ok {
			w.WriteHeader(500)
			return
		}
		conn, _, err := hj.Hijack()
		if err != nil {
			return
		}
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // close sends RST
		}
		conn.Close()
	}
}

func (rc *receiver) deliveries(id string) []delivery {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]delivery(nil), rc.got[id]...)
}

func (rc *receiver) close() { _ = rc.srv.Close() }
