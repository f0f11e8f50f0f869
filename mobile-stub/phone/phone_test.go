package phone

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	webpush "github.com/SherClockHolmes/webpush-go"
)

// waitPush returns the next push, failing the test if none comes (the
// bound only keeps a broken test from hanging).
func waitPush(t *testing.T, p *Phone) Push {
	t.Helper()
	select {
	case push := <-p.Pushes():
		return push
	case <-time.After(10 * time.Second):
		t.Fatal("no push arrived")
		return Push{}
	}
}

func TestEnrollSendsKeysAndSubscription(t *testing.T) {
	f := newFakeServer(t)
	p := enrolledPhone(t, f, nil)
	if p.DeviceID() != "dev-1" || p.UserID() != "alice" || p.VAPIDPublicKey() != f.vapidPub {
		t.Errorf("after enroll: device %q user %q vapid %q", p.DeviceID(), p.UserID(), p.VAPIDPublicKey())
	}
	sub := f.subscription()
	if sub.Endpoint != p.PushEndpoint() || !strings.HasPrefix(sub.Endpoint, "http://127.0.0.1:") || !strings.Contains(sub.Endpoint, "/push/") {
		t.Errorf("registered endpoint %q, phone's %q", sub.Endpoint, p.PushEndpoint())
	}
	if sub.Keys.P256dh != b64.EncodeToString(p.keys.push.PublicKey().Bytes()) || sub.Keys.Auth != b64.EncodeToString(p.keys.authSecret) {
		t.Errorf("registered keys %+v do not match the phone's", sub.Keys)
	}
	if name := f.enrolledName(); name != "test phone" {
		t.Errorf("registered name %v", name)
	}
	if got := f.problemList(); len(got) != 0 {
		t.Errorf("server problems: %v", got)
	}
}

func TestEnrollErrors(t *testing.T) {
	f := newFakeServer(t)
	p, _ := New(f.srv.URL, Options{})
	t.Cleanup(func() { _ = p.Close() })
	if err := p.Enroll(t.Context(), enrollCode); err == nil {
		t.Error("Enroll before Start succeeded")
	}
	if err := p.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	err := p.Enroll(t.Context(), "WRONG")
	var se *ServerError
	if !errors.As(err, &se) || se.Status != 400 || se.Code != "invalid_request" || se.Description != "unknown enrollment code" {
		t.Fatalf("Enroll(WRONG) = %v, want ServerError 400 invalid_request", err)
	}
	if p.Enrolled() {
		t.Error("a refused enrollment left the phone enrolled")
	}
}

func TestPushIsVerifiedDecryptedAndDelivered(t *testing.T) {
	f := newFakeServer(t)
	p := enrolledPhone(t, f, nil)
	payload := `{"type":"approval_request","id":"req-pay","binding_message":"Pay 25 000 €","agent":{"client_id":"shopper","client_name":"Shopping agent","owner":"acme"},"summary":"transfer 25000 EUR","risk":{"level":"high","score":75,"reasons":[{"rule":"r1","reason":"big"}]},"expires_at":"2026-01-15T12:05:00Z"}`
	resp := f.push(t, payload, f.vapidPriv, f.vapidPub)
	if resp.StatusCode != http.StatusCreated || !strings.HasPrefix(resp.Header.Get("Location"), "/message/") {
		t.Fatalf("push answered %d Location %q, want 201 with a message resource", resp.StatusCode, resp.Header.Get("Location"))
	}
	push := waitPush(t, p)
	if string(push.Raw) != payload {
		t.Errorf("Raw %q", push.Raw)
	}
	want := Push{Type: "approval_request", ID: "req-pay", BindingMessage: "Pay 25 000 €", Summary: "transfer 25000 EUR",
		Agent: Agent{ClientID: "shopper", ClientName: "Shopping agent", Owner: "acme"}}
	if push.Type != want.Type || push.ID != want.ID || push.BindingMessage != want.BindingMessage || push.Summary != want.Summary || push.Agent != want.Agent {
		t.Errorf("push %+v", push)
	}
	if push.Risk.Level != "high" || push.Risk.Score != 75 || len(push.Risk.Reasons) != 1 || !push.ExpiresAt.Equal(time.Date(2026, 1, 15, 12, 5, 0, 0, time.UTC)) {
		t.Errorf("push risk %+v expires %v", push.Risk, push.ExpiresAt)
	}
	if push.TTL != "60" || push.Urgency != "high" || push.Topic != "req1" {
		t.Errorf("push headers TTL %q Urgency %q Topic %q", push.TTL, push.Urgency, push.Topic)
	}

	// A bare risk level string is accepted too.
	f.push(t, `{"type":"approval_request","id":"r2","risk":"medium"}`, f.vapidPriv, f.vapidPub)
	if push := waitPush(t, p); push.Risk.Level != "medium" {
		t.Errorf("risk %+v, want level medium", push.Risk)
	}
}

func TestPushRefusals(t *testing.T) {
	f := newFakeServer(t)
	p := enrolledPhone(t, f, nil)
	intruderPriv, intruderPub, _ := webpush.GenerateVAPIDKeys()
	if resp := f.push(t, `{"type":"approval_request","id":"x"}`, intruderPriv, intruderPub); resp.StatusCode != http.StatusForbidden {
		t.Errorf("push signed by another VAPID key: %d, want 403", resp.StatusCode)
	}
	if resp := f.push(t, `not json`, f.vapidPriv, f.vapidPub); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("non-JSON payload: %d, want 400", resp.StatusCode)
	}
	post := func(url string, header map[string]string) int {
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader("x"))
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	base := strings.TrimSuffix(p.URL(), "/")
	if got := post(base+"/push/not-my-id", map[string]string{"TTL": "0", "Content-Encoding": "aes128gcm"}); got != http.StatusNotFound {
		t.Errorf("unknown push id: %d, want 404", got)
	}
	if got := post(p.PushEndpoint(), map[string]string{"Content-Encoding": "aes128gcm"}); got != http.StatusBadRequest {
		t.Errorf("no TTL: %d, want 400 (RFC 8030 §5.2)", got)
	}
	if got := post(p.PushEndpoint(), map[string]string{"TTL": "0", "Content-Encoding": "aesgcm"}); got != http.StatusUnsupportedMediaType {
		t.Errorf("old aesgcm coding: %d, want 415", got)
	}
	if got := post(p.PushEndpoint(), map[string]string{"TTL": "0", "Content-Encoding": "aes128gcm", "Authorization": "vapid t=x, k=y"}); got != http.StatusUnauthorized {
		t.Errorf("bad VAPID: %d, want 401", got)
	}
	select {
	case push := <-p.Pushes():
		t.Errorf("a refused push was delivered: %+v", push)
	default:
	}

	// A phone that is not enrolled accepts no application server.
	fresh, _ := New(f.srv.URL, Options{})
	t.Cleanup(func() { _ = fresh.Close() })
	if err := fresh.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := post(fresh.PushEndpoint(), map[string]string{"TTL": "0", "Content-Encoding": "aes128gcm"}); got != http.StatusForbidden {
		t.Errorf("push to an unenrolled phone: %d, want 403", got)
	}
}

func TestPendingViewDecide(t *testing.T) {
	f := newFakeServer(t)
	p := enrolledPhone(t, f, nil)
	f.addRequest("req-pay", viewPayment)
	f.addRequest("req-read", viewRead)
	ctx := t.Context()

	list, err := p.Pending(ctx)
	if err != nil || len(list) != 2 || list[0].ID != "req-read" || list[1].ID != "req-pay" {
		t.Fatalf("Pending = %+v, %v; want req-read, req-pay", list, err)
	}
	v, err := p.View(ctx, "req-pay")
	if err != nil {
		t.Fatal(err)
	}
	if v.Agent.ClientName != "Shopping agent" || v.Risk.Level != "high" || v.Risk.Score != 75 || len(v.Risk.Reasons) != 1 ||
		v.Risk.Reasons[0].Rule != "payment-over-limit" || v.Status != "pending" || !v.ExpiresAt.Equal(time.Date(2026, 1, 15, 12, 5, 0, 0, time.UTC)) {
		t.Errorf("View = %+v", v)
	}

	if err := p.Decide(ctx, "req-pay", Approve); err != nil {
		t.Fatalf("Decide: %v", err)
	}
	if c := f.decision("req-pay"); c["decision"] != "approve" || c["req"] != "req-pay" {
		t.Errorf("server recorded %v", c)
	}
	var se *ServerError
	if err := p.Decide(ctx, "req-pay", Deny); !errors.As(err, &se) || se.Status != 409 || se.Code != "conflict" {
		t.Errorf("second decision = %v, want ServerError 409 conflict", err)
	}
	if _, err := p.View(ctx, "nope"); !errors.As(err, &se) || se.Status != 404 || se.Code != "not_found" {
		t.Errorf("View(nope) = %v, want ServerError 404 not_found", err)
	}
	if got := f.problemList(); len(got) != 0 {
		t.Errorf("server problems: %v", got)
	}
}

// A decision signed over something other than what the server shows is
// refused: the hook for the server's tamper tests.
func TestTamperedDecisionIsRefused(t *testing.T) {
	f := newFakeServer(t)
	p := enrolledPhone(t, f, nil)
	f.addRequest("req-pay", viewPayment)
	v, err := p.View(t.Context(), "req-pay")
	if err != nil {
		t.Fatal(err)
	}
	v.BindingMessage = "Pay 25 € to Ünïcode"
	err = p.SendDecision(t.Context(), v, Approve)
	var se *ServerError
	if !errors.As(err, &se) || se.Status != 400 || se.Code != "invalid_request" {
		t.Errorf("tampered decision = %v, want ServerError 400 invalid_request", err)
	}
	if f.decision("req-pay") != nil {
		t.Error("the server recorded a tampered decision")
	}
}

func TestAutoDecide(t *testing.T) {
	f := newFakeServer(t)
	p := enrolledPhone(t, f, nil)
	f.addRequest("req-pay", viewPayment)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	results := make(chan error, 1)
	go p.AutoDecide(ctx, Deny, func(push Push, err error) {
		if push.ID == "req-pay" {
			results <- err
		}
	})
	f.push(t, `{"type":"status","id":"ignored"}`, f.vapidPriv, f.vapidPub)
	f.push(t, `{"type":"approval_request","id":"req-pay","binding_message":"Pay 25 000 € to Ünïcode"}`, f.vapidPriv, f.vapidPub)
	select {
	case err := <-results:
		if err != nil {
			t.Fatalf("auto decision: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no auto decision")
	}
	if c := f.decision("req-pay"); c["decision"] != "deny" {
		t.Errorf("server recorded %v, want deny", c)
	}
	if f.decision("ignored") != nil {
		t.Error("a non-approval push was decided")
	}
}

func TestStateFilePersists(t *testing.T) {
	f := newFakeServer(t)
	path := filepath.Join(t.TempDir(), "phone.json")
	p, err := New(f.srv.URL, Options{StatePath: path})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := p.Enroll(t.Context(), enrollCode); err != nil {
		t.Fatal(err)
	}
	endpoint, jwk := p.PushEndpoint(), p.PublicJWK()
	_ = p.Close()

	info, err := os.Stat(path)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("state file mode %v, %v; want 0600", info.Mode(), err)
	}

	// Restart from the file alone: same identity, same keys, same endpoint.
	again, err := New("", Options{StatePath: path})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = again.Close() })
	if err := again.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if again.DeviceID() != "dev-1" || again.UserID() != "alice" || again.PublicJWK()["x"] != jwk["x"] {
		t.Errorf("reloaded phone: device %q user %q", again.DeviceID(), again.UserID())
	}
	if again.PushEndpoint() != endpoint || again.PushEndpointChanged() {
		t.Errorf("endpoint %q after restart, want %q", again.PushEndpoint(), endpoint)
	}
	if _, err := again.Pending(t.Context()); err != nil {
		t.Errorf("reloaded phone cannot authenticate: %v", err)
	}
	_ = again.Close()

	// The saved address is taken: the phone listens elsewhere and tells the
	// server its new endpoint.
	squatter, err := net.Listen("tcp", strings.TrimPrefix(strings.TrimSuffix(again.URL(), "/"), "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer squatter.Close()
	moved, err := New("", Options{StatePath: path})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = moved.Close() })
	if err := moved.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if moved.PushEndpoint() == endpoint || !moved.PushEndpointChanged() {
		t.Fatalf("moved phone endpoint %q, changed=%v", moved.PushEndpoint(), moved.PushEndpointChanged())
	}
	if err := moved.UpdatePushSubscription(t.Context()); err != nil {
		t.Fatal(err)
	}
	if f.subscription().Endpoint != moved.PushEndpoint() || moved.PushEndpointChanged() {
		t.Errorf("server has %q, phone listens at %q", f.subscription().Endpoint, moved.PushEndpoint())
	}
	f.push(t, `{"type":"approval_request","id":"after-move"}`, f.vapidPriv, f.vapidPub)
	if push := waitPush(t, moved); push.ID != "after-move" {
		t.Errorf("push after the move: %+v", push)
	}

	if _, err := New("http://other.example", Options{StatePath: path}); err == nil {
		t.Error("a state enrolled with one server was used for another")
	}
	if err := os.WriteFile(path, []byte(`{"device_key":"x"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(f.srv.URL, Options{StatePath: path}); err == nil {
		t.Error("a corrupt state file was accepted")
	}
}
