package ciba

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"time"

	"github.com/countersign/countersign/ciba/store"
	"github.com/countersign/countersign/ciba/token"
)

// signingKeysName is the store singleton holding the signing key set.
const signingKeysName = "signing-keys"

// KeyRing is a node's copy of the shared signing key set: created by the
// first node that starts, kept in Redis, re-read periodically so that a
// rotation on one node reaches all.
type KeyRing struct {
	db  *store.DB
	cur atomic.Pointer[token.KeySet]
	raw atomic.Pointer[[]byte]
}

func encodeKeySet(ks token.KeySet) ([]byte, error) {
	all := append([]token.Key{ks.Current}, ks.Previous...)
	out := make([]json.RawMessage, len(all))
	for i, k := range all {
		b, err := k.MarshalBinary()
		if err != nil {
			return nil, err
		}
		out[i] = b
	}
	return json.Marshal(out)
}

func decodeKeySet(b []byte) (token.KeySet, error) {
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return token.KeySet{}, err
	}
	var ks token.KeySet
	for i, r := range raw {
		k, err := token.ParseKey(r)
		if err != nil {
			return token.KeySet{}, err
		}
		if i == 0 {
			ks.Current = k
		} else {
			ks.Previous = append(ks.Previous, k)
		}
	}
	return ks, nil
}

// LoadKeys returns the shared key set, creating it when none exists.
func LoadKeys(ctx context.Context, db *store.DB) (*KeyRing, error) {
	k, err := token.GenerateKey(db.Now())
	if err != nil {
		return nil, err
	}
	init, err := encodeKeySet(token.KeySet{Current: k})
	if err != nil {
		return nil, err
	}
	b, err := db.LoadOrInit(ctx, signingKeysName, init)
	if err != nil {
		return nil, err
	}
	r := &KeyRing{db: db}
	return r, r.set(b)
}

func (r *KeyRing) set(b []byte) error {
	ks, err := decodeKeySet(b)
	if err != nil {
		return err
	}
	r.cur.Store(&ks)
	r.raw.Store(&b)
	return nil
}

// KeyPropagation is how long a new signing key is published before any
// node signs with it: every node re-reads the key set more often than
// that (Watch), so no node meets a token signed by a key it does not know.
const KeyPropagation = 30 * time.Second

// Get returns the key set to sign and verify with. A key younger than
// KeyPropagation is served for verification only; the key before it
// still signs.
func (r *KeyRing) Get() token.KeySet {
	ks := *r.cur.Load()
	if len(ks.Previous) > 0 && r.db.Now().Sub(ks.Current.Created) < KeyPropagation {
		prev := append([]token.Key{ks.Current}, ks.Previous[1:]...)
		return token.KeySet{Current: ks.Previous[0], Previous: prev}
	}
	return ks
}

// Refresh re-reads the key set from Redis.
func (r *KeyRing) Refresh(ctx context.Context) error {
	b, err := r.db.Load(ctx, signingKeysName)
	if err != nil {
		return err
	}
	return r.set(b)
}

// Rotate makes a new current key; the old one stays in the JWKS so that
// tokens it signed still verify until they expire.
func (r *KeyRing) Rotate(ctx context.Context) error {
	k, err := token.GenerateKey(r.db.Now())
	if err != nil {
		return err
	}
	old := *r.raw.Load()
	next, err := encodeKeySet(r.Get().Rotate(k))
	if err != nil {
		return err
	}
	if _, err := r.db.Swap(ctx, signingKeysName, old, next); err != nil {
		return err
	}
	return r.Refresh(ctx)
}

// Watch refreshes the key set every interval until ctx ends, and when
// rotate is positive, rotates the signing key that often (one node at a
// time, through a lock).
func (r *KeyRing) Watch(ctx context.Context, every, rotate time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = r.Refresh(ctx)
			if rotate > 0 && r.db.Now().Sub(r.cur.Load().Current.Created) >= rotate {
				if ok, err := r.db.TryLock(ctx, "key-rotation", time.Minute); err == nil && ok {
					_ = r.Refresh(ctx)
					if r.db.Now().Sub(r.cur.Load().Current.Created) >= rotate {
						_ = r.Rotate(ctx)
					}
				}
			}
		}
	}
}
