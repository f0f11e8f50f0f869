package phone

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	webpush "github.com/SherClockHolmes/webpush-go"
	"github.com/golang-jwt/jwt/v5"
)

const enrollCode = "ENROLL-7Q2X"

// fakeServer is a hand-written stand-in for the Countersign device API: it
// checks every call the way docs/api.md says the server must (enrollment body,
// device JWTs, decision JWTs) and records what it accepted.
type fakeServer struct {
	t         *testing.T
	srv       *httptest.Server
	vapidPriv string
	vapidPub  string
	now       func() time.Time // the server's clock, for JWT times

	mu        sync.Mutex
	devicePub *ecdsa.PublicKey
	enrolled  map[string]any // the enrollment body
	sub       webpush.Subscription
	views     map[string]string // id -> request view JSON
	order     []string
	decisions map[string]jwt.MapClaims
	jtis      map[string]bool
	problems  []string
	mandates  []map[string]any // mandate views, newest first
}

func newFakeServer(t *testing.T) *fakeServer {
	t.Helper()
	priv, pub, err := webpush.GenerateVAPIDKeys()
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeServer{t: t, vapidPriv: priv, vapidPub: pub, now: time.Now, views: map[string]string{},
		decisions: map[string]jwt.MapClaims{}, jtis: map[string]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]string{"issuer": f.issuer()})
	})
	mux.HandleFunc("POST /device/enroll", f.enroll)
	mux.HandleFunc("GET /device/requests", f.device(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		var list []json.RawMessage
		for i := len(f.order) - 1; i >= 0; i-- { // newest first
			if _, done := f.decisions[f.order[i]]; !done {
				list = append(list, json.RawMessage(f.views[f.order[i]]))
			}
		}
		writeJSON(w, 200, map[string]any{"requests": list})
	}))
	mux.HandleFunc("GET /device/requests/{id}", f.device(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		view, ok := f.views[r.PathValue("id")]
		f.mu.Unlock()
		if !ok {
			writeJSON(w, 404, map[string]string{"error": "not_found"})
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(view))
	}))
	mux.HandleFunc("POST /device/requests/{id}/decision", f.device(f.decide))
	mux.HandleFunc("PUT /device/push-subscription", f.device(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Sub webpush.Subscription `json:"push_subscription"`
		}
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil || body.Sub.Endpoint == "" || body.Sub.Keys.Auth == "" || body.Sub.Keys.P256dh == "" {
			writeJSON(w, 400, map[string]string{"error": "invalid_request"})
			return
		}
		f.mu.Lock()
		f.sub = body.Sub
		f.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	mux.HandleFunc("GET /device/mandates", f.device(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		writeJSON(w, 200, map[string]any{"mandates": append([]map[string]any{}, f.mandates...)})
	}))
	mux.HandleFunc("POST /device/mandates/{id}/revoke", f.device(f.revokeMandate))
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

// issuer differs from the URL the phone calls, as behind a proxy: the
// phone must take aud from discovery.
func (f *fakeServer) issuer() string { return f.srv.URL + "/issuer" }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (f *fakeServer) problem(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.problems = append(f.problems, fmt.Sprintf(format, args...))
}

func (f *fakeServer) enroll(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Code      string            `json:"code"`
		Name      string            `json:"name"`
		PublicKey map[string]string `json:"public_key"`
		Push      struct {
			Endpoint string `json:"endpoint"`
			Keys     struct {
				P256dh string `json:"p256dh"`
				Auth   string `json:"auth"`
			} `json:"keys"`
		} `json:"push_subscription"`
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		writeJSON(w, 400, map[string]string{"error": "invalid_request", "error_description": err.Error()})
		return
	}
	if body.Code != enrollCode {
		writeJSON(w, 400, map[string]string{"error": "invalid_request", "error_description": "unknown enrollment code"})
		return
	}
	jwk := body.PublicKey
	x, errX := b64.DecodeString(jwk["x"])
	y, errY := b64.DecodeString(jwk["y"])
	if jwk["kty"] != "EC" || jwk["crv"] != "P-256" || len(jwk) != 4 || errX != nil || errY != nil || len(x) != 32 || len(y) != 32 {
		writeJSON(w, 400, map[string]string{"error": "invalid_request", "error_description": "public_key"})
		return
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
	if err != nil {
		writeJSON(w, 400, map[string]string{"error": "invalid_request", "error_description": "public_key not on P-256"})
		return
	}
	f.mu.Lock()
	f.devicePub = pub
	f.enrolled = map[string]any{"name": body.Name}
	f.sub = webpush.Subscription{Endpoint: body.Push.Endpoint, Keys: webpush.Keys{P256dh: body.Push.Keys.P256dh, Auth: body.Push.Keys.Auth}}
	f.mu.Unlock()
	writeJSON(w, 200, map[string]string{"device_id": "dev-1", "user_id": "alice", "vapid_public_key": f.vapidPub})
}

// device wraps a handler with the device authentication of docs/api.md.
func (f *fakeServer) device(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Device ")
		if !ok {
			writeJSON(w, 401, map[string]string{"error": "invalid_token", "error_description": "no device JWT"})
			return
		}
		claims, err := f.verify(token)
		if err == nil {
			iat, _ := claims.GetIssuedAt()
			exp, _ := claims.GetExpirationTime()
			if iat == nil || exp == nil || exp.Sub(iat.Time) > 60*time.Second {
				err = fmt.Errorf("device JWT lifetime over 60 s")
			}
		}
		if err != nil {
			f.problem("device JWT: %v", err)
			writeJSON(w, 401, map[string]string{"error": "invalid_token", "error_description": err.Error()})
			return
		}
		next(w, r)
	}
}

// verify checks an ES256 JWT by the enrolled device key: typ, iss, aud,
// exp, a single-use jti.
func (f *fakeServer) verify(token string) (jwt.MapClaims, error) {
	f.mu.Lock()
	pub := f.devicePub
	f.mu.Unlock()
	if pub == nil {
		return nil, fmt.Errorf("no device enrolled")
	}
	claims := jwt.MapClaims{}
	parsed, err := jwt.ParseWithClaims(token, claims, func(*jwt.Token) (any, error) { return pub, nil },
		jwt.WithValidMethods([]string{"ES256"}), jwt.WithAudience(f.issuer()), jwt.WithIssuer("dev-1"),
		jwt.WithExpirationRequired(), jwt.WithIssuedAt(), jwt.WithTimeFunc(f.now))
	if err != nil {
		return nil, err
	}
	if parsed.Header["typ"] != "JWT" {
		return nil, fmt.Errorf("typ %v", parsed.Header["typ"])
	}
	jti, _ := claims["jti"].(string)
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(jti) < 22 || f.jtis[jti] {
		return nil, fmt.Errorf("jti %q missing, short or replayed", jti)
	}
	f.jtis[jti] = true
	return claims, nil
}

func (f *fakeServer) decide(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var body struct {
		DecisionJWT string `json:"decision_jwt"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		writeJSON(w, 400, map[string]string{"error": "invalid_request"})
		return
	}
	f.mu.Lock()
	viewJSON, ok := f.views[id]
	_, decided := f.decisions[id]
	f.mu.Unlock()
	switch {
	case !ok:
		writeJSON(w, 404, map[string]string{"error": "not_found"})
		return
	case decided:
		writeJSON(w, 409, map[string]string{"error": "conflict", "error_description": "already decided"})
		return
	}
	claims, err := f.verify(body.DecisionJWT)
	if err != nil {
		writeJSON(w, 400, map[string]string{"error": "invalid_request", "error_description": err.Error()})
		return
	}
	var view Request
	_ = json.Unmarshal([]byte(viewJSON), &view)
	adHash, _ := AuthorizationDetailsHash(view.AuthorizationDetails)
	d := claims["decision"]
	if claims["req"] != id || (d != Approve && d != Deny) ||
		claims["bm_hash"] != BindingMessageHash(view.BindingMessage) || claims["ad_hash"] != adHash {
		writeJSON(w, 400, map[string]string{"error": "invalid_request", "error_description": "decision does not match the request"})
		return
	}
	f.mu.Lock()
	f.decisions[id] = claims
	f.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// addRequest makes a pending request the device can see.
// revokeMandate answers 204 for one of the user's mandates (idempotent),
// 404 otherwise, as docs/api.md says.
func (f *fakeServer) revokeMandate(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, m := range f.mandates {
		if m["mandate_id"] == r.PathValue("id") {
			m["status"] = "revoked"
			w.WriteHeader(http.StatusNoContent)
			return
		}
	}
	writeJSON(w, 404, map[string]string{"error": "not_found", "error_description": "no such mandate"})
}

func (f *fakeServer) addRequest(id, viewJSON string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.views[id] = viewJSON
	f.order = append(f.order, id)
}

func (f *fakeServer) decision(id string) jwt.MapClaims {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.decisions[id]
}

func (f *fakeServer) subscription() webpush.Subscription {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sub
}

// push sends payload to the enrolled phone as the server would, through
// webpush-go (an independent RFC 8291/8292 implementation).
func (f *fakeServer) push(t *testing.T, payload string, vapidPriv, vapidPub string) *http.Response {
	t.Helper()
	sub := f.subscription()
	resp, err := webpush.SendNotification([]byte(payload), &sub, &webpush.Options{
		Subscriber: "ops@example.com", TTL: 60, Urgency: webpush.UrgencyHigh, Topic: "req1",
		VAPIDPublicKey: vapidPub, VAPIDPrivateKey: vapidPriv,
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	return resp
}

// views used across tests.
const (
	viewPayment = `{"id":"req-pay","agent":{"client_id":"shopper","client_name":"Shopping agent","owner":"acme"},
 "binding_message":"Pay 25 000 € to Ünïcode",
 "authorization_details":[ {"type":"payment_initiation","currency":"EUR","amount":25000.00,"creditorName":"Ünïcode €","nested":{"z":1e3,"a":[true,null]}} ],
 "risk":{"level":"high","score":75,"reasons":[{"rule":"payment-over-limit","reason":"The amount is above your spending limit."}]},
 "created_at":"2026-01-15T12:00:00Z","expires_at":"2026-01-15T12:05:00Z","status":"pending"}`
	viewRead = `{"id":"req-read","agent":{"client_id":"reader"},
 "risk":{"level":"medium","score":40,"reasons":[]},
 "created_at":"2026-01-15T12:01:00Z","expires_at":"2026-01-15T12:06:00Z","status":"pending"}`
)

// enrolledPhone is a started, enrolled in-memory phone against f.
func enrolledPhone(t *testing.T, f *fakeServer, now func() time.Time) *Phone {
	t.Helper()
	p, err := New(f.srv.URL, Options{Now: now, Name: "test phone"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	if err := p.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := p.Enroll(t.Context(), enrollCode); err != nil {
		t.Fatal(err)
	}
	return p
}

func (f *fakeServer) problemList() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.problems...)
}

func (f *fakeServer) enrolledName() any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.enrolled["name"]
}
