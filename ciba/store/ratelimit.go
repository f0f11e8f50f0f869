package store

import (
	"context"
	"strconv"
	"time"
)

// RateKey names one counter of a request rate limit: a kind ("ip",
// "client") and the id counted under it.
type RateKey struct{ Kind, ID string }

func (db *DB) rateKey(k RateKey, idx int64) string {
	return db.prefix + "rl:" + k.Kind + ":" + strconv.FormatInt(idx, 10) + ":" + k.ID
}

// AddHits adds ns[i] requests (negative: takes them back) under keys[i]
// in the window of at, in one pipelined round trip, and returns each
// key's total in that window across every node. A node that counts
// locally and syncs now and then uses it to share its counts.
func (db *DB) AddHits(ctx context.Context, window time.Duration, at time.Time, keys []RateKey, ns []int64) ([]int64, error) {
	idx := at.UnixNano() / int64(window)
	pipe := db.rdb.Pipeline()
	incrs := make([]interface{ Val() int64 }, len(keys))
	for i, k := range keys {
		key := db.rateKey(k, idx)
		incrs[i] = pipe.IncrBy(ctx, key, ns[i])
		pipe.PExpire(ctx, key, window+time.Second)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, err
	}
	totals := make([]int64, len(keys))
	for i, c := range incrs {
		totals[i] = c.Val()
	}
	return totals, nil
}
