// Package notify is Countersign's outbound delivery: Web Push messages to
// enrolled devices and ping/push callbacks to agents. It knows nothing of
// CIBA state machines, requests or Redis: a caller hands it an endpoint, a
// payload and a deadline, and gets back a Result saying what happened and
// what to do next.
//
// What it owns:
//
//   - Pusher: one Web Push message per call (RFC 8030), encrypted with
//     aes128gcm (RFC 8291) and authenticated with VAPID (RFC 8292) through
//     github.com/SherClockHolmes/webpush-go. SendRetry retries transient
//     failures with exponential backoff and full jitter, honouring
//     Retry-After, until a deadline.
//   - Callback: the CIBA Core §10 notification POST to an agent, with its
//     client_notification_token as a bearer token. Redirects are never
//     followed.
//   - EndpointPolicy: the SSRF guard for both kinds of endpoint. Check runs
//     at registration (scheme, userinfo, fragment, literal IPs); Client
//     refuses forbidden addresses at connect time, after DNS resolution, so
//     a name that later resolves to an internal address (DNS rebinding) is
//     still refused.
//
// Every send is classified into one Outcome:
//
//	Delivered  2xx
//	Gone       404 / 410 from a push service: the caller removes the subscription
//	Retry      429 and 5xx from a push service, 5xx from a callback,
//	           timeouts and connection errors (Result.RetryAfter when given)
//	Failed     anything else: other 4xx (401 included), 3xx (redirects are not
//	           followed), a forbidden address, a payload that cannot be sent
//
// What it deliberately does not do: it keeps no state between calls (no
// outbox, no subscription store: the caller's outbox decides when to call
// again, using Backoff and Result.RetryAfter), it never logs, and it never
// follows a redirect.
package notify
