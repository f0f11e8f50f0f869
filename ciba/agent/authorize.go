package agent

import (
	"context"
	"errors"
	"net/url"
	"strconv"
	"time"
)

// defaultInterval is CIBA Core §7.3's interval when the server sends none.
const defaultInterval = 5 * time.Second

// ack is the backchannel authentication response (CIBA Core §7.3).
type ack struct {
	AuthReqID string `json:"auth_req_id"`
	ExpiresIn int    `json:"expires_in"`
	Interval  *int   `json:"interval"`
}

// Authorize asks for r, then waits for the outcome: the token, a denial or
// expiry as an *Error with the server's code (access_denied,
// expired_token, ...), or ctx's error. Poll clients poll /token at the
// server's interval, 5 s longer after each slow_down (CIBA Core §11); ping
// clients (r.NotificationToken set and c.Pings set) call /token once the
// ping has come (CIBA Core §10.2).
func (c *Client) Authorize(ctx context.Context, r Request) (*Token, error) {
	m, err := c.discover(ctx)
	if err != nil {
		return nil, err
	}
	form := url.Values{}
	set := func(k, v string) {
		if v != "" {
			form.Set(k, v)
		}
	}
	set("scope", r.Scope)
	set("login_hint", r.LoginHint)
	set("binding_message", r.BindingMessage)
	set("acr_values", r.ACRValues)
	set("client_notification_token", r.NotificationToken)
	set("mandate_id", r.MandateID)
	if r.RequestedExpiry > 0 {
		form.Set("requested_expiry", strconv.Itoa(r.RequestedExpiry))
	}
	if r.AuthorizationDetails != nil {
		d, err := detailsJSON(r.AuthorizationDetails)
		if err != nil {
			return nil, err
		}
		form.Set("authorization_details", d)
	}
	// Register before asking: the ping may come before the acknowledgement.
	var pings <-chan string
	if r.NotificationToken != "" && c.Pings != nil {
		ch, done := c.Pings.expect(r.NotificationToken)
		defer done()
		pings = ch
	}
	var a ack
	if err := c.post(ctx, m.BackchannelAuthenticationEndpoint, form, false, &a); err != nil {
		return nil, err
	}
	if a.AuthReqID == "" {
		return nil, errors.New("agent: acknowledgement without auth_req_id")
	}
	interval := defaultInterval
	if a.Interval != nil && *a.Interval >= 0 {
		interval = time.Duration(*a.Interval) * time.Second
	}
	if pings != nil {
		if err := c.waitPing(ctx, pings, a.AuthReqID, time.Duration(a.ExpiresIn)*time.Second); err != nil {
			return nil, err
		}
	}
	form = url.Values{"grant_type": {grantCIBA}, "auth_req_id": {a.AuthReqID}}
	for {
		var t Token
		err := c.post(ctx, m.TokenEndpoint, form, true, &t)
		if err == nil {
			t.AuthReqID = a.AuthReqID
			return &t, nil
		}
		var e *Error
		if !errors.As(err, &e) {
			return nil, err
		}
		switch e.Code {
		case "authorization_pending":
		case "slow_down":
			// CIBA Core §11 (RFC 8628 §3.5): the interval grows by 5 s.
			interval += 5 * time.Second
		default:
			return nil, e
		}
		if pings != nil && e.Code == "authorization_pending" {
			// A ping came but the request is still pending (a stale
			// ping): wait for the next one.
			if err := c.waitPing(ctx, pings, a.AuthReqID, time.Duration(a.ExpiresIn)*time.Second); err != nil {
				return nil, err
			}
			continue
		}
		if err := c.sleep(ctx, interval); err != nil {
			return nil, err
		}
	}
}

// waitPing waits for the ping for id; past expiry it returns nil, so one
// last /token call gets the server's expired_token.
func (c *Client) waitPing(ctx context.Context, pings <-chan string, id string, expiry time.Duration) error {
	t := time.NewTimer(expiry)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return nil
		case got := <-pings:
			if got == id {
				return nil
			}
		}
	}
}
