package phone

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// maxResponse bounds what the phone reads from the server.
const maxResponse = 1 << 20

// subscription is the push_subscription member sent to the server
// (PushSubscription.toJSON()).
type subscription struct {
	Endpoint string `json:"endpoint"`
	Keys     struct {
		P256dh string `json:"p256dh"`
		Auth   string `json:"auth"`
	} `json:"keys"`
}

// subscriptionLocked is the phone's current push subscription.
func (p *Phone) subscriptionLocked() subscription {
	var s subscription
	s.Endpoint = p.endpointLocked()
	s.Keys.P256dh = b64.EncodeToString(p.keys.push.PublicKey().Bytes())
	s.Keys.Auth = b64.EncodeToString(p.keys.authSecret)
	return s
}

// Issuer returns the server's issuer, read once from
// /.well-known/openid-configuration and kept in the state.
func (p *Phone) Issuer(ctx context.Context) (string, error) {
	p.mu.Lock()
	issuer := p.st.Issuer
	p.mu.Unlock()
	if issuer != "" {
		return issuer, nil
	}
	var meta struct {
		Issuer string `json:"issuer"`
	}
	if err := p.call(ctx, http.MethodGet, "/.well-known/openid-configuration", nil, &meta, false); err != nil {
		return "", fmt.Errorf("phone: discovery: %w", err)
	}
	if meta.Issuer == "" {
		return "", errors.New("phone: discovery document has no issuer")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.st.Issuer = meta.Issuer
	return meta.Issuer, saveState(p.path, p.st)
}

// Enroll redeems a one-time enrollment code: it registers the device key
// and the push subscription (POST /device/enroll) and keeps the device id,
// user id and VAPID key the server returns. The phone must be started, so
// that its push endpoint exists.
func (p *Phone) Enroll(ctx context.Context, code string) error {
	if code == "" {
		return errors.New("phone: empty enrollment code")
	}
	if _, err := p.Issuer(ctx); err != nil {
		return err
	}
	p.mu.Lock()
	if p.base == "" {
		p.mu.Unlock()
		return errors.New("phone: Start the phone before enrolling (the push endpoint must exist)")
	}
	sub := p.subscriptionLocked()
	name := p.st.Name
	p.mu.Unlock()
	req := map[string]any{
		"code":              code,
		"name":              name,
		"public_key":        p.PublicJWK(),
		"push_subscription": sub,
	}
	var resp struct {
		DeviceID       string `json:"device_id"`
		UserID         string `json:"user_id"`
		VAPIDPublicKey string `json:"vapid_public_key"`
	}
	if err := p.call(ctx, http.MethodPost, "/device/enroll", req, &resp, false); err != nil {
		return fmt.Errorf("phone: enroll: %w", err)
	}
	if resp.DeviceID == "" || resp.UserID == "" {
		return errors.New("phone: enroll: response lacks device_id or user_id")
	}
	if raw, err := b64.DecodeString(strings.TrimRight(resp.VAPIDPublicKey, "=")); err != nil || len(raw) != 65 || raw[0] != 4 {
		return errors.New("phone: enroll: vapid_public_key is not an uncompressed P-256 key in base64url")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.st.Server = p.server
	p.st.DeviceID = resp.DeviceID
	p.st.UserID = resp.UserID
	p.st.VAPIDPublicKey = strings.TrimRight(resp.VAPIDPublicKey, "=")
	p.st.PushEndpoint = sub.Endpoint
	return saveState(p.path, p.st)
}

// PushEndpointChanged reports whether the push endpoint differs from the
// one the server was given (the listen address changed since enrollment).
func (p *Phone) PushEndpointChanged() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.st.DeviceID != "" && p.base != "" && p.st.PushEndpoint != p.endpointLocked()
}

// UpdatePushSubscription sends the current push subscription to the server
// (PUT /device/push-subscription, body {"push_subscription": {...}} as at
// enrollment).
func (p *Phone) UpdatePushSubscription(ctx context.Context) error {
	p.mu.Lock()
	if p.base == "" {
		p.mu.Unlock()
		return errors.New("phone: not started")
	}
	sub := p.subscriptionLocked()
	p.mu.Unlock()
	body := map[string]any{"push_subscription": sub}
	if err := p.call(ctx, http.MethodPut, "/device/push-subscription", body, nil, true); err != nil {
		return fmt.Errorf("phone: update push subscription: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.st.PushEndpoint = sub.Endpoint
	return saveState(p.path, p.st)
}

// Pending lists the user's pending requests, newest first
// (GET /device/requests).
func (p *Phone) Pending(ctx context.Context) ([]Request, error) {
	var resp struct {
		Requests []Request `json:"requests"`
	}
	if err := p.call(ctx, http.MethodGet, "/device/requests", nil, &resp, true); err != nil {
		return nil, fmt.Errorf("phone: pending requests: %w", err)
	}
	return resp.Requests, nil
}

// View fetches one request as the device shows it
// (GET /device/requests/{id}).
func (p *Phone) View(ctx context.Context, id string) (*Request, error) {
	var r Request
	if err := p.call(ctx, http.MethodGet, "/device/requests/"+url.PathEscape(id), nil, &r, true); err != nil {
		return nil, fmt.Errorf("phone: request %s: %w", id, err)
	}
	if r.ID != id {
		return nil, fmt.Errorf("phone: asked for request %s, got %q", id, r.ID)
	}
	return &r, nil
}

// Decide fetches the request's view, signs decision over what it shows and
// sends it (POST /device/requests/{id}/decision).
func (p *Phone) Decide(ctx context.Context, id, decision string) error {
	r, err := p.View(ctx, id)
	if err != nil {
		return err
	}
	return p.SendDecision(ctx, r, decision)
}

// SendDecision signs decision over r (as DecisionJWT) and sends it.
func (p *Phone) SendDecision(ctx context.Context, r *Request, decision string) error {
	token, err := p.DecisionJWT(r, decision, p.now())
	if err != nil {
		return err
	}
	return p.PostDecisionJWT(ctx, r.ID, token)
}

// PostDecisionJWT sends an already signed decision JWT for request id, for
// tests that forge or replay one.
func (p *Phone) PostDecisionJWT(ctx context.Context, id, decisionJWT string) error {
	path := "/device/requests/" + url.PathEscape(id) + "/decision"
	if err := p.call(ctx, http.MethodPost, path, map[string]string{"decision_jwt": decisionJWT}, nil, true); err != nil {
		return fmt.Errorf("phone: decision on %s: %w", id, err)
	}
	return nil
}

// AutoDecide decides every approval_request push with decision (after
// fetching its view, as Decide does) until Pushes() is closed or ctx is
// done, and reports each outcome to report (which may be nil).
func (p *Phone) AutoDecide(ctx context.Context, decision string, report func(Push, error)) {
	for {
		select {
		case <-ctx.Done():
			return
		case push, ok := <-p.pushes:
			if !ok {
				return
			}
			if push.Type != "approval_request" {
				continue
			}
			err := p.Decide(ctx, push.ID, decision)
			if report != nil {
				report(push, err)
			}
		}
	}
}

// call makes one JSON call to the server. deviceAuth adds
// "Authorization: Device <jwt>". An error answer becomes a *ServerError.
func (p *Phone) call(ctx context.Context, method, path string, in, out any, deviceAuth bool) error {
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, p.server+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if deviceAuth {
		token, err := p.DeviceJWT(p.now())
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Device "+token)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		se := &ServerError{}
		_ = json.Unmarshal(data, se) // a body that is not the error JSON leaves Code empty
		se.Status = resp.StatusCode
		return se
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decoding %s %s answer: %w", method, path, err)
	}
	return nil
}
