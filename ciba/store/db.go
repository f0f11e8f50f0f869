package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Shards is the number of hash-tag shards that per-user state is spread
// over. A user's requests, counters, audit chain and outbox all live in
// the shard of that user, so every transition is one single-slot script.
const Shards = 16

// ErrNotFound is returned when a record does not exist.
var ErrNotFound = errors.New("store: not found")

// ErrExists is returned when a record with that id already exists.
var ErrExists = errors.New("store: already exists")

// DB is the one Redis-backed store of Countersign. It is safe for
// concurrent use; every method is one script or one pipeline.
type DB struct {
	rdb    redis.UniversalClient
	prefix string
	// Now is the clock used for expiry and counters.
	Now func() time.Time

	// shardLocks serialise this node's writers of each audit chain (the
	// user shards and the directory); they also guard the cached heads.
	shardLocks [Shards + 1]sync.Mutex
	lastHash   [Shards]string // cache of each shard's audit chain head
	dirHead    string

	// outboxNudge wakes this node's outbox reader after this node wrote
	// an entry; outboxTurn rotates its blocking read over the shards
	// under Cluster.
	outboxNudge chan struct{}
	outboxTurn  atomic.Uint32
}

// Open returns a DB over rdb whose keys all start with prefix ("cs:" when
// empty). Tests use a prefix per test to share one server.
func Open(rdb redis.UniversalClient, prefix string) *DB {
	if prefix == "" {
		prefix = "cs:"
	}
	db := &DB{rdb: rdb, prefix: prefix, Now: time.Now, outboxNudge: make(chan struct{}, 1)}
	db.nudgeOutbox() // the first read looks at every shard
	return db
}

// Redis returns the underlying client (for health checks and pub/sub).
func (db *DB) Redis() redis.UniversalClient { return db.rdb }

// Ping reports whether Redis answers.
func (db *DB) Ping(ctx context.Context) error { return db.rdb.Ping(ctx).Err() }

// ShardOf returns the shard of a user id.
func ShardOf(userID string) int {
	h := sha256.Sum256([]byte(userID))
	return int(h[0]) % Shards
}

// tag returns the key prefix of a shard, including its hash tag.
func (db *DB) tag(shard int) string { return fmt.Sprintf("%s{s%02d}:", db.prefix, shard) }

// NewID returns a random, unguessable id: 128 bits, base64url.
func NewID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// NewShardedID returns a random id that carries its shard in its first two
// hex characters, so a request id alone finds the slot of its keys.
func NewShardedID(shard int) string { return fmt.Sprintf("%02x", shard) + NewID() }

// shardOfID parses the shard of an id made by NewShardedID.
func shardOfID(id string) (int, bool) {
	if len(id) != 24 {
		return 0, false
	}
	b, err := hex.DecodeString(id[:2])
	if err != nil || int(b[0]) >= Shards {
		return 0, false
	}
	return int(b[0]), true
}

func ms(t time.Time) int64 { return t.UnixMilli() }

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
