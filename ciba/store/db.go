package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
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

	// chains queue this node's writes to each audit chain (the user
	// shards and the directory) and commit them in batches (audit.go);
	// the one committer of a chain at a time owns its cached head.
	chains   [Shards + 1]chain
	lastHash [Shards]string // cache of each shard's audit chain head
	dirHead  string

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

// idAlphabet is the alphabet of generated ids: letters and digits only, so
// an id passes every id validator (client and user ids must start with a
// letter or digit, which keeps them from reading as a CLI flag), needs no
// escaping in a URL path, a Redis key or a log line.
const idAlphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// IDLen is the length of an id made by NewID: 22 characters of 62 carry
// 22·log2(62) ≈ 131 bits, more than the 128 bits we promise.
const IDLen = 22

// NewID returns a random, unguessable id: 22 letters and digits, 131 bits.
func NewID() string {
	id, err := NewIDFrom(rand.Reader)
	if err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return id
}

// NewIDFrom draws an id of NewID's form from the random bytes of r. Bytes
// of 248 and above are skipped, so every character is uniform over the 62
// (248 = 4·62). NewID uses crypto/rand; tests and fuzz targets use others.
func NewIDFrom(r io.Reader) (string, error) {
	var out [IDLen]byte
	var buf [32]byte
	n := 0
	for n < IDLen {
		if _, err := io.ReadFull(r, buf[:]); err != nil {
			return "", err
		}
		for _, b := range buf {
			if b < 248 && n < IDLen {
				out[n] = idAlphabet[b%62]
				n++
			}
		}
	}
	return string(out[:]), nil
}

// NewShardedID returns a random id that carries its shard in its first two
// hex characters, so a request id alone finds the slot of its keys.
func NewShardedID(shard int) string { return fmt.Sprintf("%02x", shard) + NewID() }

// shardOfID parses the shard of an id made by NewShardedID.
func shardOfID(id string) (int, bool) {
	if len(id) != 2+IDLen {
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
