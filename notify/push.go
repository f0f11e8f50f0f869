package notify

import (
	"context"
	"crypto/ecdh"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	webpush "github.com/SherClockHolmes/webpush-go"
)

// MaxPayload is the largest plaintext a Pusher sends: RFC 8291 §4 bounds an
// aes128gcm push message to one 4096-octet record, which leaves 3993 octets
// once the header (86), the delimiter (1) and the tag (16) are counted.
const MaxPayload = 3993

// maxTopic is RFC 8030 §5.4's limit on the Topic header.
const maxTopic = 32

// defaultTimeout bounds one delivery when the caller gives no client.
const defaultTimeout = 10 * time.Second

// defaultClient is the production-policy client (https, public addresses
// only) used when a Pusher or Callback has no Client.
var defaultClient = sync.OnceValue(func() *http.Client { return EndpointPolicy{}.Client(defaultTimeout) })

// VAPIDKeys is the application server's VAPID key pair (RFC 8292 §3.2):
// Public is the uncompressed P-256 point and Private the 32-byte scalar,
// both base64url without padding, as webpush-go uses them.
type VAPIDKeys struct {
	Public, Private string
}

// GenerateVAPIDKeys returns a fresh P-256 VAPID key pair.
func GenerateVAPIDKeys() (VAPIDKeys, error) {
	private, public, err := webpush.GenerateVAPIDKeys()
	if err != nil {
		return VAPIDKeys{}, fmt.Errorf("notify: generating VAPID keys: %w", err)
	}
	return VAPIDKeys{Public: public, Private: private}, nil
}

// Validate checks that both keys decode and that Public belongs to Private,
// so a misconfigured pair fails at start rather than at the first push.
func (k VAPIDKeys) Validate() error {
	priv, err := decodeB64URL(k.Private)
	if err != nil {
		return errors.New("notify: VAPID private key is not base64url")
	}
	key, err := ecdh.P256().NewPrivateKey(priv)
	if err != nil {
		return errors.New("notify: VAPID private key is not a P-256 scalar")
	}
	pub, err := decodeB64URL(k.Public)
	if err != nil {
		return errors.New("notify: VAPID public key is not base64url")
	}
	if subtle.ConstantTimeCompare(pub, key.PublicKey().Bytes()) != 1 {
		return errors.New("notify: VAPID public key does not match the private key")
	}
	return nil
}

// Keys are a push subscription's keys as the Push API serialises them.
type Keys struct {
	// P256dh is the user agent's ECDH public key, an uncompressed P-256
	// point (RFC 8291 §3.1), base64url.
	P256dh string `json:"p256dh"`
	// Auth is the 16-byte authentication secret (RFC 8291 §3.2), base64url.
	Auth string `json:"auth"`
}

// Subscription is a Web Push subscription (PushSubscription.toJSON()).
type Subscription struct {
	Endpoint string `json:"endpoint"`
	Keys     Keys   `json:"keys"`
}

// Validate checks the subscription's keys; the endpoint URL is checked
// separately by an EndpointPolicy.
func (s Subscription) Validate() error {
	if s.Endpoint == "" {
		return errors.New("notify: subscription has no endpoint")
	}
	dh, err := decodeB64URL(s.Keys.P256dh)
	if err != nil {
		return errors.New("notify: subscription p256dh is not base64url")
	}
	// RFC 8291 §3.1: the key is an uncompressed point on P-256.
	if _, err := ecdh.P256().NewPublicKey(dh); err != nil {
		return errors.New("notify: subscription p256dh is not an uncompressed P-256 point")
	}
	auth, err := decodeB64URL(s.Keys.Auth)
	if err != nil {
		return errors.New("notify: subscription auth is not base64url")
	}
	// RFC 8291 §3.2: the authentication secret is 16 octets.
	if len(auth) != 16 {
		return fmt.Errorf("notify: subscription auth is %d bytes, want 16", len(auth))
	}
	return nil
}

// Message is one push message. TTL is how long the push service keeps it
// for an offline device, whole seconds (RFC 8030 §5.2; 0 means deliver now
// or drop). Topic, when set, replaces an undelivered message with the same
// topic (RFC 8030 §5.4): at most 32 base64url characters. Urgency is
// "very-low", "low", "normal" or "high" (RFC 8030 §5.3), "" for the
// default (normal).
type Message struct {
	Payload []byte
	TTL     time.Duration
	Topic   string
	Urgency string
}

// Pusher sends Web Push messages signed with its VAPID keys.
type Pusher struct {
	Keys VAPIDKeys
	// Subscriber is the contact put in the VAPID "sub" claim (RFC 8292
	// §2.1): an e-mail address (webpush-go adds "mailto:"; a leading
	// "mailto:" here is dropped so it is not doubled) or an https URL.
	Subscriber string
	// Client sends the request; nil means EndpointPolicy{}.Client with a
	// 10 s timeout (https, public addresses only). Its redirect policy is
	// overridden: redirects are never followed.
	Client *http.Client
	// Now is the clock for Retry-After dates and deadlines; nil is time.Now.
	Now func() time.Time
	// Sleep waits between retries of SendRetry; nil waits on a timer. It
	// returns early with ctx's error.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Send makes one delivery attempt of m to sub and classifies the answer.
func (p *Pusher) Send(ctx context.Context, sub Subscription, m Message) Result {
	if err := sub.Validate(); err != nil {
		return failed(err)
	}
	opts, err := p.options(m)
	if err != nil {
		return failed(err)
	}
	tc := &trackingClient{client: noRedirects(p.Client)}
	opts.HTTPClient = tc
	// webpush-go pads the message in place (bytes.NewBuffer(message) then
	// Write): give it a private copy whose capacity equals its length so
	// the caller's payload, often shared by pushes to several devices, is
	// never written to.
	payload := make([]byte, len(m.Payload))
	copy(payload, m.Payload)
	resp, err := webpush.SendNotificationWithContext(ctx, payload, &webpush.Subscription{
		Endpoint: sub.Endpoint,
		Keys:     webpush.Keys{P256dh: sub.Keys.P256dh, Auth: sub.Keys.Auth},
	}, opts)
	if err != nil {
		if !tc.called {
			// Encryption or VAPID signing failed: nothing was sent and
			// sending again will not help.
			return failed(fmt.Errorf("notify: preparing push: %w", err))
		}
		return transportResult(err)
	}
	defer closeBody(resp)
	return pushResult(resp, p.now())
}

// options validates m and builds webpush-go's options for it.
func (p *Pusher) options(m Message) (*webpush.Options, error) {
	if len(m.Payload) > MaxPayload {
		return nil, fmt.Errorf("notify: payload is %d bytes, at most %d fit one record (RFC 8291 §4)", len(m.Payload), MaxPayload)
	}
	if m.TTL < 0 {
		return nil, errors.New("notify: negative TTL")
	}
	if err := checkTopic(m.Topic); err != nil {
		return nil, err
	}
	switch webpush.Urgency(m.Urgency) {
	case "", webpush.UrgencyVeryLow, webpush.UrgencyLow, webpush.UrgencyNormal, webpush.UrgencyHigh:
	default:
		return nil, fmt.Errorf("notify: urgency %q is not one of RFC 8030 §5.3", m.Urgency)
	}
	subscriber := strings.TrimPrefix(p.Subscriber, "mailto:")
	if subscriber == "" {
		// RFC 8292 §2.1: a contact lets the push service reach the operator.
		return nil, errors.New("notify: Pusher.Subscriber is empty")
	}
	if p.Keys.Public == "" || p.Keys.Private == "" {
		return nil, errors.New("notify: Pusher has no VAPID keys")
	}
	return &webpush.Options{
		Subscriber:      subscriber,
		Topic:           m.Topic,
		TTL:             int(m.TTL / time.Second), // RFC 8030 §5.2: whole seconds
		Urgency:         webpush.Urgency(m.Urgency),
		VAPIDPublicKey:  p.Keys.Public,
		VAPIDPrivateKey: p.Keys.Private,
	}, nil
}

// checkTopic enforces RFC 8030 §5.4: at most 32 characters of the URL and
// filename safe base64 alphabet.
func checkTopic(topic string) error {
	if len(topic) > maxTopic {
		return fmt.Errorf("notify: topic is %d characters, at most %d (RFC 8030 §5.4)", len(topic), maxTopic)
	}
	for _, c := range topic {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("notify: topic has %q, not base64url (RFC 8030 §5.4)", c)
		}
	}
	return nil
}

// pushResult classifies a push service's answer (RFC 8030 §5, §7, §8.4).
func pushResult(resp *http.Response, now time.Time) Result {
	r := Result{Status: resp.StatusCode}
	switch s := resp.StatusCode; {
	case s >= 200 && s < 300:
		r.Outcome = Delivered
		return r
	case s == http.StatusNotFound || s == http.StatusGone:
		// RFC 8030 §7.3: the subscription expired or was removed.
		r.Outcome = Gone
	case s == http.StatusTooManyRequests || s >= 500:
		r.Outcome = Retry
		r.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), now)
	default:
		r.Outcome = Failed
	}
	r.Err = &StatusError{Status: resp.StatusCode}
	return r
}

// SendRetry sends m, retrying Retry outcomes with Backoff (and never sooner
// than a Retry-After asks) until an attempt is not Retry, the next attempt
// would start after deadline, or ctx is done. It returns the last attempt's
// Result. The message's TTL shrinks with each retry so it never outlives
// the first attempt's TTL.
func (p *Pusher) SendRetry(ctx context.Context, sub Subscription, m Message, deadline time.Time) Result {
	expires := p.now().Add(m.TTL)
	for attempt := 0; ; attempt++ {
		r := p.Send(ctx, sub, m)
		if r.Outcome != Retry {
			return r
		}
		wait := max(Backoff(attempt), r.RetryAfter)
		next := p.now().Add(wait)
		if next.After(deadline) || ctx.Err() != nil {
			return r
		}
		if err := p.sleep(ctx, wait); err != nil {
			r.Err = errors.Join(r.Err, err)
			return r
		}
		// RFC 8030 §5.2: the TTL counts from this request; keep the
		// original expiry.
		m.TTL = max(0, expires.Sub(p.now()))
	}
}

func (p *Pusher) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

func (p *Pusher) sleep(ctx context.Context, d time.Duration) error {
	if p.Sleep != nil {
		return p.Sleep(ctx, d)
	}
	return sleep(ctx, d)
}

// trackingClient tells webpush-go's preparation errors (nothing sent) from
// transport errors.
type trackingClient struct {
	client *http.Client
	called bool
}

func (t *trackingClient) Do(req *http.Request) (*http.Response, error) {
	t.called = true
	return t.client.Do(req)
}

// noRedirects returns client (or the default client) with redirects
// switched off, whatever the caller configured: a push service or an agent
// must not steer our request elsewhere (CIBA Core §10.2, docs/api.md).
func noRedirects(client *http.Client) *http.Client {
	if client == nil {
		return defaultClient()
	}
	c := *client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

// closeBody drains a little of the body, so the connection can be reused,
// and closes it.
func closeBody(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
}

// decodeB64URL decodes base64url with or without padding (the Push API
// emits it unpadded; some clients pad).
func decodeB64URL(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}
