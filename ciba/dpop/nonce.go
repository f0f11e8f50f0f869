package dpop

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"time"
)

// DefaultNoncePeriod is how long a nonce bucket lasts when Nonces.Period
// is zero; a nonce is then accepted for one to two periods.
const DefaultNoncePeriod = 5 * time.Minute

// Nonces issues and checks server nonces (RFC 9449 §8) without storing
// anything: a nonce is base64url(HMAC-SHA256(key, time bucket)), the
// bucket being Now() divided into Periods. Every node with the same key
// issues the same nonce in a bucket and accepts those of the current and
// the previous one, so nonces rotate every Period and work on every node.
type Nonces struct {
	// Key returns the shared HMAC key (at least 32 random bytes, one for
	// the whole deployment). It is called on every Issue and Valid, so a
	// rotated key takes effect at once (outstanding nonces then fail once
	// with use_dpop_nonce, and the client retries with the new one).
	Key    func() []byte
	Period time.Duration
	Now    func() time.Time
}

// Issue returns the nonce of the current bucket.
func (n *Nonces) Issue() string { return n.at(n.bucket()) }

// Valid reports whether nonce is the one of the current or the previous
// bucket.
func (n *Nonces) Valid(nonce string) bool {
	b := n.bucket()
	for _, bucket := range []int64{b, b - 1} {
		if hmac.Equal([]byte(nonce), []byte(n.at(bucket))) {
			return true
		}
	}
	return false
}

func (n *Nonces) bucket() int64 {
	now := time.Now
	if n.Now != nil {
		now = n.Now
	}
	p := n.Period
	if p <= 0 {
		p = DefaultNoncePeriod
	}
	return now().UnixNano() / int64(p)
}

func (n *Nonces) at(bucket int64) string {
	mac := hmac.New(sha256.New, n.Key())
	// Domain-separated, so the key cannot be made to sign anything else.
	mac.Write([]byte("countersign dpop nonce\x00"))
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(bucket))
	mac.Write(b[:])
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}
