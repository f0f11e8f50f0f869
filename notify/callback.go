package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Callback posts CIBA ping and push notifications to agents (CIBA Core
// §10.2 ping, §10.3 push).
type Callback struct {
	// Client sends the request; nil means EndpointPolicy{}.Client with a
	// 10 s timeout (https, public addresses only). Build one with
	// EndpointPolicy.Client so addresses are checked at connect time; its
	// redirect policy is overridden: redirects are never followed.
	Client *http.Client
	// Now is the clock for Retry-After dates; nil is time.Now.
	Now func() time.Time
}

// Post makes one delivery attempt: a JSON POST of body to endpoint with
// "Authorization: Bearer <bearer>" (CIBA Core §10.2: the
// client_notification_token). 2xx is Delivered; 3xx and 4xx (401 included)
// are Failed and must not be retried (docs/api.md: redirects are never followed,
// a 4xx is final); 5xx, timeouts and connection errors are Retry. The bearer
// token never appears in Result.Err.
func (c *Callback) Post(ctx context.Context, endpoint, bearer string, body []byte) Result {
	if bearer == "" {
		return failed(errors.New("notify: callback without a client_notification_token"))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return failed(fmt.Errorf("notify: callback request: %w", err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+bearer)
	resp, err := noRedirects(c.Client).Do(req)
	if err != nil {
		return transportResult(err)
	}
	defer closeBody(resp)
	r := Result{Status: resp.StatusCode}
	switch s := resp.StatusCode; {
	case s >= 200 && s < 300:
		r.Outcome = Delivered
		return r
	case s >= 500:
		r.Outcome = Retry
		r.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), c.now())
	default:
		// CIBA Core §10.2: the OP does not follow redirects; docs/api.md: a 4xx
		// answer, 401 included, is not retried.
		r.Outcome = Failed
	}
	r.Err = &StatusError{Status: resp.StatusCode}
	return r
}

func (c *Callback) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}
