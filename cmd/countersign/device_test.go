package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/countersign/countersign/mobile-stub/phone"
)

// enrollPhone enrolls an in-process stub phone for user.
func (tn *testNode) enrollPhone(user, name string) *phone.Phone {
	tn.t.Helper()
	r := tn.admin("POST", "/admin/users/"+user+"/enrollments", nil)
	if r.Status != 201 || len(r.str("code")) < 26 {
		tn.t.Fatalf("enrollment: %d %s", r.Status, r.Raw)
	}
	p, err := phone.New(tn.URL, phone.Options{Listen: "127.0.0.1:0", Name: name, Now: tn.clock.Now})
	if err != nil {
		tn.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tn.t.Cleanup(func() { cancel(); p.Close() })
	if err := p.Start(ctx); err != nil {
		tn.t.Fatal(err)
	}
	if err := p.Enroll(ctx, r.str("code")); err != nil {
		tn.t.Fatal(err)
	}
	// A code enrolls one device, once.
	p2, _ := phone.New(tn.URL, phone.Options{Listen: "127.0.0.1:0", Now: tn.clock.Now})
	defer p2.Close()
	if err := p2.Enroll(ctx, r.str("code")); err == nil {
		tn.t.Fatal("an enrollment code worked twice")
	}
	return p
}

func waitPush(t *testing.T, p *phone.Phone, id string) phone.Push {
	t.Helper()
	for {
		select {
		case push := <-p.Pushes():
			if push.ID == id {
				return push
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no push for %s", id)
		}
	}
}

func (tn *testNode) highRisk(id, secret, bm string) string {
	tn.t.Helper()
	r := tn.post("/bc-authorize", id, secret, url.Values{"scope": {"openid"}, "login_hint": {"alice"},
		"binding_message": {bm}, "authorization_details": {bigPayment}})
	if r.Status != 200 || r.Body["interval"] != float64(5) {
		tn.t.Fatalf("high-risk request: %d %s", r.Status, r.Raw)
	}
	return r.str("auth_req_id")
}

func (tn *testNode) poll(id, secret, authReqID string) reply {
	tn.t.Helper()
	tn.clock.Advance(6 * time.Second)
	return tn.post("/token", id, secret, url.Values{"grant_type": {"urn:openid:params:grant-type:ciba"}, "auth_req_id": {authReqID}})
}

func TestPhoneApprovalReleasesDeviceToken(t *testing.T) {
	tn := startNode(t, nil)
	id, secret := setup(t, tn)
	ph := tn.enrollPhone("alice", "Pixel")
	ctx := context.Background()
	authReqID := tn.highRisk(id, secret, "Pay ACME 25k")
	push := waitPush(t, ph, authReqID)
	if push.Urgency != "high" || push.Topic == "" || push.TTL == "" || push.BindingMessage != "Pay ACME 25k" ||
		push.Agent.ClientID != id || push.Agent.ClientName != "Trip planner" || push.Risk.Level != "high" || push.Type != "approval_request" {
		t.Fatalf("push: %+v", push)
	}
	if !strings.Contains(push.Summary, "25000.00 EUR") {
		t.Fatalf("summary: %q", push.Summary)
	}
	list, err := ph.Pending(ctx)
	if err != nil || len(list) != 1 || list[0].ID != authReqID || list[0].Status != "pending" || len(list[0].Risk.Reasons) == 0 {
		t.Fatalf("pending: %+v %v", list, err)
	}
	wantError(t, tn.poll(id, secret, authReqID), 400, "authorization_pending")
	if err := ph.Decide(ctx, authReqID, "approve"); err != nil {
		t.Fatal(err)
	}
	tok := tn.poll(id, secret, authReqID)
	if tok.Status != 200 {
		t.Fatalf("token after approval: %d %s", tok.Status, tok.Raw)
	}
	at := tn.verify(tok.str("access_token"), "at+jwt")
	ap := at["approval"].(map[string]any)
	if ap["by"] != "device" || ap["device_id"] != ph.DeviceID() || ap["decision_jti"] == "" {
		t.Fatalf("approval claim: %v", ap)
	}
	if idt := tn.verify(tok.str("id_token"), "JWT"); idt["acr"] != "urn:countersign:acr:device" {
		t.Fatalf("acr: %v", idt["acr"])
	}
	// Decided: a second decision is refused.
	var se *phone.ServerError
	if err := ph.Decide(ctx, authReqID, "deny"); !asServerError(err, &se) || se.Status != 409 {
		t.Fatalf("second decision: %v", err)
	}
	if list, _ := ph.Pending(ctx); len(list) != 0 {
		t.Fatalf("still pending: %+v", list)
	}
}

func asServerError(err error, se **phone.ServerError) bool { return errors.As(err, se) }

func TestPhoneDenialGivesAccessDenied(t *testing.T) {
	tn := startNode(t, nil)
	id, secret := setup(t, tn)
	ph := tn.enrollPhone("alice", "Pixel")
	authReqID := tn.highRisk(id, secret, "Pay ACME")
	waitPush(t, ph, authReqID)
	if err := ph.Decide(context.Background(), authReqID, "deny"); err != nil {
		t.Fatal(err)
	}
	wantError(t, tn.poll(id, secret, authReqID), 400, "access_denied")
}

func TestForgedAndReplayedDecisionsChangeNothing(t *testing.T) {
	tn := startNode(t, nil)
	id, secret := setup(t, tn)
	ph := tn.enrollPhone("alice", "Pixel")
	tn.user(map[string]any{"id": "bob"})
	bobPhone := tn.enrollPhone("bob", "Bob's phone")
	ctx := context.Background()
	authReqID := tn.highRisk(id, secret, "Pay ACME")
	view, err := ph.View(ctx, authReqID)
	if err != nil {
		t.Fatal(err)
	}
	now := tn.clock.Now()
	post := func(p *phone.Phone, jwtStr string) reply {
		t.Helper()
		auth, _ := p.DeviceJWT(tn.clock.Now())
		req, _ := http.NewRequest("POST", tn.URL+"/device/requests/"+authReqID+"/decision",
			strings.NewReader(`{"decision_jwt":"`+jwtStr+`"}`))
		req.Header.Set("Authorization", "Device "+auth)
		req.Header.Set("Content-Type", "application/json")
		return tn.do(req)
	}
	// Signed by another key than the device's.
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	good, _ := ph.DecisionJWT(view, "approve", now)
	parts := strings.Split(good, ".")
	claims := jwt.MapClaims{}
	_, _, _ = jwt.NewParser().ParseUnverified(good, claims)
	forged, _ := jwt.NewWithClaims(jwt.SigningMethodES256, claims).SignedString(other)
	wantError(t, post(ph, forged), 400, "invalid_request")
	// Tampered binding message hash.
	tampered := *view
	tampered.BindingMessage = "Pay ACME 1 EUR"
	bad, _ := ph.DecisionJWT(&tampered, "approve", now)
	wantError(t, post(ph, bad), 400, "invalid_request")
	// Tampered details hash.
	tampered = *view
	tampered.AuthorizationDetails = json.RawMessage(`[{"type":"payment_initiation","amount":1,"currency":"EUR"}]`)
	bad, _ = ph.DecisionJWT(&tampered, "approve", now)
	wantError(t, post(ph, bad), 400, "invalid_request")
	// Stale: made 10 minutes ago.
	stale, _ := ph.DecisionJWT(view, "approve", now.Add(-10*time.Minute))
	wantError(t, post(ph, stale), 400, "invalid_request")
	// Another user's device sees nothing and decides nothing.
	if _, err := bobPhone.View(ctx, authReqID); err == nil {
		t.Fatal("bob's phone can see alice's request")
	}
	bobJWT, _ := bobPhone.DecisionJWT(view, "approve", now)
	wantError(t, post(bobPhone, bobJWT), 404, "not_found")
	// A device JWT is single use.
	auth, _ := ph.DeviceJWT(tn.clock.Now())
	for i, want := range []int{200, 401} {
		req, _ := http.NewRequest("GET", tn.URL+"/device/requests", nil)
		req.Header.Set("Authorization", "Device "+auth)
		if r := tn.do(req); r.Status != want {
			t.Fatalf("device JWT use %d: %d %s", i+1, r.Status, r.Raw)
		}
	}
	_ = parts
	// Nothing changed: still pending.
	wantError(t, tn.poll(id, secret, authReqID), 400, "authorization_pending")
	// The real decision works once; replaying it is refused.
	if r := post(ph, good); r.Status != 200 || r.str("status") != "approved" {
		t.Fatalf("good decision: %d %s", r.Status, r.Raw)
	}
	wantError(t, post(ph, good), 409, "conflict")
	// Late: a decision after expiry.
	late := tn.highRisk(id, secret, "Late one")
	lview, _ := ph.View(ctx, late)
	tn.clock.Advance(6 * time.Minute)
	lj, _ := ph.DecisionJWT(lview, "approve", tn.clock.Now())
	auth, _ = ph.DeviceJWT(tn.clock.Now())
	req, _ := http.NewRequest("POST", tn.URL+"/device/requests/"+late+"/decision", strings.NewReader(`{"decision_jwt":"`+lj+`"}`))
	req.Header.Set("Authorization", "Device "+auth)
	wantError(t, tn.do(req), 409, "conflict")
}

func TestTwoDevicesFirstDecisionWins(t *testing.T) {
	tn := startNode(t, nil)
	id, secret := setup(t, tn)
	a := tn.enrollPhone("alice", "Phone A")
	b := tn.enrollPhone("alice", "Phone B")
	authReqID := tn.highRisk(id, secret, "Pay ACME")
	waitPush(t, a, authReqID)
	waitPush(t, b, authReqID)
	ctx := context.Background()
	if err := b.Decide(ctx, authReqID, "approve"); err != nil {
		t.Fatal(err)
	}
	var se *phone.ServerError
	if err := a.Decide(ctx, authReqID, "deny"); !asServerError(err, &se) || se.Status != 409 {
		t.Fatalf("second device: %v", err)
	}
	tok := tn.poll(id, secret, authReqID)
	at := tn.verify(tok.str("access_token"), "at+jwt")
	if at["approval"].(map[string]any)["device_id"] != b.DeviceID() {
		t.Fatalf("approval: %v", at["approval"])
	}
}

func TestGonePushSubscriptionIsRemoved(t *testing.T) {
	tn := startNode(t, nil)
	id, secret := setup(t, tn)
	var hits atomic.Int32
	gone := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		// A real push service request: encrypted body and a VAPID header.
		if r.Header.Get("Content-Encoding") != "aes128gcm" || !strings.HasPrefix(r.Header.Get("Authorization"), "vapid t=") || len(b) < 100 {
			w.WriteHeader(400)
			return
		}
		hits.Add(1)
		w.WriteHeader(http.StatusGone)
	}))
	defer gone.Close()
	done := make(chan struct{}, 4)
	tn.pusher.Wait = func() { done <- struct{}{} }
	ph := tn.enrollPhone("alice", "Old phone")
	// Point the device at the gone push service.
	sub := `{"push_subscription":{"endpoint":"` + gone.URL + `/push/x","keys":{"p256dh":"BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM","auth":"tBHItJI5svbpez7KI4CCXg"}}}`
	auth, _ := ph.DeviceJWT(tn.clock.Now())
	req, _ := http.NewRequest("PUT", tn.URL+"/device/push-subscription", strings.NewReader(sub))
	req.Header.Set("Authorization", "Device "+auth)
	if r := tn.do(req); r.Status != 204 {
		t.Fatalf("update subscription: %d %s", r.Status, r.Raw)
	}
	authReqID := tn.highRisk(id, secret, "Pay")
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("push never finished")
	}
	if hits.Load() != 1 {
		t.Fatalf("push service hits: %d", hits.Load())
	}
	dev, err := tn.db.Device(context.Background(), ph.DeviceID())
	if err != nil || len(dev.PushSubscription) != 0 {
		t.Fatalf("subscription kept: %s %v", dev.PushSubscription, err)
	}
	// The request is not lost: the phone still sees it.
	list, err := ph.Pending(context.Background())
	if err != nil || len(list) != 1 || list[0].ID != authReqID {
		t.Fatalf("pending after failed push: %+v %v", list, err)
	}
}
