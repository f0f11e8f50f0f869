package store

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// An AuthZEN evaluation that started a phone approval is linked to its
// request, so that the same evaluation repeated while the request waits
// gets the same auth_req_id instead of a second push. The link lives in
// the user's shard and expires with the request.

func (db *DB) approvalKey(user, key string) string {
	return db.tag(ShardOf(user)) + "authzen:" + key
}

// ClaimApproval links key to the request id, unless another request is
// linked already: then it returns that request's id and false.
func (db *DB) ClaimApproval(ctx context.Context, user, key, id string, until time.Time) (string, bool, error) {
	k := db.approvalKey(user, key)
	ok, err := db.rdb.SetNX(ctx, k, id, db.linkTTL(until)).Result()
	if err != nil || ok {
		return id, ok, err
	}
	prev, err := db.rdb.Get(ctx, k).Result()
	if errors.Is(err, redis.Nil) {
		// The link expired in between: claim it again.
		return db.ClaimApproval(ctx, user, key, id, until)
	}
	return prev, false, err
}

// ReplaceApproval links key to id, replacing a link to a request that no
// longer waits.
func (db *DB) ReplaceApproval(ctx context.Context, user, key, id string, until time.Time) error {
	return db.rdb.Set(ctx, db.approvalKey(user, key), id, db.linkTTL(until)).Err()
}

// linkTTL is how long a link to a request waiting until then lives, on
// the store's clock like every other expiry (the wall clock gave a
// negative TTL, which Redis refuses, under a clock behind it), and never
// less than a second, so that a link is never kept without expiry.
func (db *DB) linkTTL(until time.Time) time.Duration {
	return max(until.Sub(db.Now()), time.Second)
}

// ForgetApproval removes the link of key, when its request could not be
// stored.
func (db *DB) ForgetApproval(ctx context.Context, user, key string) error {
	return db.rdb.Del(ctx, db.approvalKey(user, key)).Err()
}
