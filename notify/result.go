package notify

import (
	"context"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Outcome is what one delivery attempt means for the caller.
type Outcome int

// The outcomes of a delivery. The zero Outcome is none of them, so a zero
// Result never reads as delivered.
const (
	// Delivered: the endpoint accepted the message (2xx).
	Delivered Outcome = iota + 1
	// Gone: the push subscription no longer exists (404 or 410, RFC 8030
	// §7.3); the caller removes it and does not retry.
	Gone
	// Retry: a transient failure (429, 5xx, timeout, connection error);
	// try again later, not before Result.RetryAfter.
	Retry
	// Failed: a permanent failure (other 4xx, 3xx, a forbidden endpoint, a
	// message that cannot be encoded); do not retry.
	Failed
)

// String returns the outcome's name.
func (o Outcome) String() string {
	switch o {
	case Delivered:
		return "delivered"
	case Gone:
		return "gone"
	case Retry:
		return "retry"
	case Failed:
		return "failed"
	}
	return "outcome(" + strconv.Itoa(int(o)) + ")"
}

// Result is the outcome of one delivery (or of the last attempt of a retry
// loop). Status is the HTTP status, 0 when no response was received.
// RetryAfter is the delay the endpoint asked for, 0 when none. Err explains
// any outcome other than Delivered.
type Result struct {
	Outcome    Outcome
	Status     int
	RetryAfter time.Duration
	Err        error
}

// StatusError is Result.Err for an HTTP answer that was not a success.
type StatusError struct {
	Status int
}

func (e *StatusError) Error() string {
	return "notify: endpoint answered " + strconv.Itoa(e.Status) + " " + http.StatusText(e.Status)
}

// failed builds a Failed result for an error found before sending.
func failed(err error) Result { return Result{Outcome: Failed, Err: err} }

// transportResult classifies an error from http.Client.Do: a policy
// refusal is permanent; timeouts, refused or reset connections, TLS and DNS
// failures, and the caller's own cancellation leave the message undelivered
// and worth another try.
func transportResult(err error) Result {
	if isForbidden(err) {
		return Result{Outcome: Failed, Err: err}
	}
	return Result{Outcome: Retry, Err: err}
}

// parseRetryAfter reads a Retry-After header (RFC 9110 §10.2.3): a number of
// seconds or an HTTP-date. A missing, malformed or past value is 0.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		return time.Duration(min(secs, maxRetryAfter)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return min(d, time.Duration(maxRetryAfter)*time.Second)
		}
	}
	return 0
}

// maxRetryAfter caps Retry-After (in seconds, one day) so a hostile value
// cannot overflow a Duration; deadlines cut far shorter anyway.
const maxRetryAfter = 86400

const (
	backoffBase = 200 * time.Millisecond
	backoffCap  = 30 * time.Second
)

// Backoff returns the wait before retry number attempt (0 for the first
// retry): exponential with full jitter, a uniformly random duration in
// [0, min(30 s, 200 ms × 2^attempt)].
func Backoff(attempt int) time.Duration {
	ceiling := backoffCap
	if attempt < 0 {
		attempt = 0
	}
	if attempt < 20 { // 200 ms << 20 is far past the cap
		ceiling = min(backoffCap, backoffBase<<attempt)
	}
	return rand.N(ceiling + 1)
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
