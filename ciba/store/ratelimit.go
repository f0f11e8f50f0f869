package store

import (
	"context"
	"strconv"
	"time"
)

// RateKey names one counter of a request rate limit: a kind ("ip",
// "client") and the id counted under it.
type RateKey struct{ Kind, ID string }

// Hit counts one request under each key in the current fixed window of
// length window, shared by every node on this Redis, and returns each
// count and the time left in the window. It is one pipelined round trip:
// the window's index is in the key name, so each window starts at zero
// and its key expires on its own.
func (db *DB) Hit(ctx context.Context, window time.Duration, keys ...RateKey) ([]int64, time.Duration, error) {
	now := db.Now()
	idx := now.UnixNano() / int64(window)
	left := time.Duration((idx+1)*int64(window) - now.UnixNano())
	pipe := db.rdb.Pipeline()
	incrs := make([]interface{ Val() int64 }, len(keys))
	for i, k := range keys {
		key := db.rateKey(k, idx)
		incrs[i] = pipe.Incr(ctx, key)
		pipe.PExpire(ctx, key, window+time.Second)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, 0, err
	}
	counts := make([]int64, len(keys))
	for i, c := range incrs {
		counts[i] = c.Val()
	}
	return counts, left, nil
}

// Unhit takes back one request counted by Hit in the window of at.
func (db *DB) Unhit(ctx context.Context, window time.Duration, at time.Time, k RateKey) error {
	key := db.rateKey(k, at.UnixNano()/int64(window))
	pipe := db.rdb.Pipeline()
	pipe.Decr(ctx, key)
	pipe.PExpire(ctx, key, window+time.Second) // never a key without a TTL
	_, err := pipe.Exec(ctx)
	return err
}

func (db *DB) rateKey(k RateKey, idx int64) string {
	return db.prefix + "rl:" + k.Kind + ":" + strconv.FormatInt(idx, 10) + ":" + k.ID
}
