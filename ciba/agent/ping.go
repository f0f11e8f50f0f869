package agent

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
)

// PingReceiver is the http.Handler of the agent's
// backchannel_client_notification_endpoint for ping mode (CIBA Core
// §10.2). It accepts a notification only with the bearer
// client_notification_token of a request Authorize is waiting for, and
// answers 204; anything else is 401 or 400. Its zero value is ready.
type PingReceiver struct {
	mu      sync.Mutex
	waiting map[[32]byte]*waiter
}

type waiter struct {
	token string
	ch    chan string
}

// expect registers token and returns the channel its pings arrive on.
func (p *PingReceiver) expect(token string) (<-chan string, func()) {
	key := sha256.Sum256([]byte(token))
	w := &waiter{token: token, ch: make(chan string, 4)}
	p.mu.Lock()
	if p.waiting == nil {
		p.waiting = map[[32]byte]*waiter{}
	}
	p.waiting[key] = w
	p.mu.Unlock()
	return w.ch, func() {
		p.mu.Lock()
		if p.waiting[key] == w {
			delete(p.waiting, key)
		}
		p.mu.Unlock()
	}
}

// ServeHTTP implements http.Handler.
func (p *PingReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	// CIBA Core §10.2: the server authenticates with the client's token.
	auth := r.Header.Get("Authorization")
	scheme, tok, _ := strings.Cut(auth, " ")
	var wt *waiter
	if strings.EqualFold(scheme, "Bearer") && tok != "" {
		key := sha256.Sum256([]byte(tok))
		p.mu.Lock()
		wt = p.waiting[key]
		p.mu.Unlock()
	}
	// The map is keyed by a hash of the token; the token itself is
	// compared in constant time.
	if wt == nil || subtle.ConstantTimeCompare([]byte(tok), []byte(wt.token)) != 1 {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	var body struct {
		AuthReqID string `json:"auth_req_id"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 4<<10)).Decode(&body); err != nil || body.AuthReqID == "" {
		http.Error(w, "auth_req_id is required", http.StatusBadRequest)
		return
	}
	select {
	case wt.ch <- body.AuthReqID:
	default: // already told; duplicates (at-least-once delivery) are dropped
	}
	w.WriteHeader(http.StatusNoContent)
}
