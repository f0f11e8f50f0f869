package store

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

func (db *DB) singletonKey(name string) string { return db.prefix + "{dir}:singleton:" + name }

// LoadOrInit returns the value stored under name, storing init first when
// there is none. Every node calls it at start; the first one wins, so all
// nodes share one signing key set and one VAPID key pair.
func (db *DB) LoadOrInit(ctx context.Context, name string, init []byte) ([]byte, error) {
	key := db.singletonKey(name)
	if _, err := db.rdb.SetNX(ctx, key, init, 0).Result(); err != nil {
		return nil, err
	}
	return db.rdb.Get(ctx, key).Bytes()
}

// Load returns the value stored under name, ErrNotFound when none.
func (db *DB) Load(ctx context.Context, name string) ([]byte, error) {
	b, err := db.rdb.Get(ctx, db.singletonKey(name)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	return b, err
}

// Swap replaces the value stored under name when it still equals old; it
// reports whether it did (key rotation by one node at a time).
func (db *DB) Swap(ctx context.Context, name string, old, next []byte) (bool, error) {
	n, err := scriptSwap.Run(ctx, db.rdb, []string{db.singletonKey(name)}, old, next).Int()
	return n == 1, err
}

// scriptSwap is lua/swap.lua; the names are its KEYS and ARGV as
// passed below, in order.
var scriptSwap = newLua("swap", []string{"singleton"}, []string{"old", "next"})

// UseOnce records that the single-use identifier id of kind (a JWT jti)
// has been seen, until it expires. It reports false when it was already
// used (RFC 7523 §3 item 7, CIBA Core §7.1.1).
func (db *DB) UseOnce(ctx context.Context, kind, id string, until time.Time) (bool, error) {
	ttl := until.Sub(db.Now())
	if ttl < time.Second {
		ttl = time.Second
	}
	return db.rdb.SetNX(ctx, db.prefix+"once:"+kind+":"+id, "1", ttl+time.Minute).Result()
}

// TryLock takes a named lock for ttl unless another node holds it: one
// node at a time runs cluster-wide chores (audit retention).
func (db *DB) TryLock(ctx context.Context, name string, ttl time.Duration) (bool, error) {
	return db.rdb.SetNX(ctx, db.prefix+"{dir}:lock:"+name, NewID(), ttl).Result()
}
