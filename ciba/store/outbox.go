package store

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// OutboxGroup is the consumer group every node's delivery workers join.
const OutboxGroup = "notify"

// OutboxMsg is one notification read from a shard's outbox.
type OutboxMsg struct {
	Shard  int
	ID     string // the stream entry id
	Outbox Outbox
	// Deliveries counts how often the entry was handed out (XPENDING).
	Deliveries int64
}

func (db *DB) outboxKey(shard int) string { return db.tag(shard) + "outbox" }

// EnsureOutboxGroups creates the consumer group on every shard's outbox.
func (db *DB) EnsureOutboxGroups(ctx context.Context) error {
	for s := 0; s < Shards; s++ {
		err := db.rdb.XGroupCreateMkStream(ctx, db.outboxKey(s), OutboxGroup, "0").Err()
		if err != nil && !strings.Contains(err.Error(), "BUSYGROUP") {
			return err
		}
	}
	return nil
}

func parseOutbox(shard int, m redis.XMessage) (OutboxMsg, error) {
	raw, _ := m.Values["n"].(string)
	var o Outbox
	if err := json.Unmarshal([]byte(raw), &o); err != nil {
		return OutboxMsg{}, err
	}
	return OutboxMsg{Shard: shard, ID: m.ID, Outbox: o}, nil
}

// clusterBlock is how long a Cluster node blocks on one shard's outbox
// before it turns to the next: the idle cost is one command per
// clusterBlock, and an entry another node wrote waits at most Shards
// turns (entries this node wrote are read at once after the turn).
const clusterBlock = 100 * time.Millisecond

// ReadOutbox hands new notifications to consumer, blocking up to block.
// With one Redis node (or Sentinel) it reads every shard in one blocking
// call. Under Cluster, where streams of different slots cannot be read
// together, it reads every shard without blocking after this node wrote
// an entry, and otherwise blocks on one shard at a time, in turn.
func (db *DB) ReadOutbox(ctx context.Context, consumer string, count int64, block time.Duration) ([]OutboxMsg, error) {
	var streams [][]string
	if _, cluster := db.rdb.(*redis.ClusterClient); cluster {
		select {
		case <-db.outboxNudge:
			for s := 0; s < Shards; s++ {
				streams = append(streams, []string{db.outboxKey(s), ">"})
			}
			block = -1
		default:
			s := int(db.outboxTurn.Add(1) % Shards)
			streams = [][]string{{db.outboxKey(s), ">"}}
			block = min(block, clusterBlock)
		}
	} else {
		all := make([]string, 0, 2*Shards)
		for s := 0; s < Shards; s++ {
			all = append(all, db.outboxKey(s))
		}
		for s := 0; s < Shards; s++ {
			all = append(all, ">")
		}
		streams = [][]string{all}
	}
	var out []OutboxMsg
	for _, st := range streams {
		res, err := db.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: OutboxGroup, Consumer: consumer,
			Streams: st, Count: count, Block: block}).Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return out, err
		}
		for _, xs := range res {
			shard := db.shardOfOutbox(xs.Stream)
			for _, m := range xs.Messages {
				o, err := parseOutbox(shard, m)
				if err != nil {
					// An unreadable entry can never be delivered: drop it.
					db.rdb.XAck(ctx, xs.Stream, OutboxGroup, m.ID)
					continue
				}
				o.Deliveries = 1
				out = append(out, o)
			}
		}
	}
	if int64(len(out)) >= count {
		db.nudgeOutbox() // more may be waiting: look at every shard again
	}
	return out, nil
}

// nudgeOutbox tells this node's reader that an entry was written.
func (db *DB) nudgeOutbox() {
	select {
	case db.outboxNudge <- struct{}{}:
	default:
	}
}

func (db *DB) shardOfOutbox(stream string) int {
	for s := 0; s < Shards; s++ {
		if db.outboxKey(s) == stream {
			return s
		}
	}
	return -1
}

// ClaimStale takes over, for consumer, notifications another consumer
// has held longer than idle (a dead node's), XAUTOCLAIM on every shard.
func (db *DB) ClaimStale(ctx context.Context, consumer string, idle time.Duration, count int64) ([]OutboxMsg, error) {
	var out []OutboxMsg
	for s := 0; s < Shards; s++ {
		msgs, _, err := db.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{Stream: db.outboxKey(s), Group: OutboxGroup,
			Consumer: consumer, MinIdle: idle, Start: "0-0", Count: count}).Result()
		if err != nil {
			return out, err
		}
		for _, m := range msgs {
			o, err := parseOutbox(s, m)
			if err != nil {
				db.rdb.XAck(ctx, db.outboxKey(s), OutboxGroup, m.ID)
				continue
			}
			out = append(out, o)
		}
	}
	return out, nil
}

// Touch resets the idle time of a notification this consumer keeps for a
// later retry, so that live workers' retries are not taken over.
func (db *DB) Touch(ctx context.Context, consumer string, m OutboxMsg) error {
	return db.rdb.XClaimJustID(ctx, &redis.XClaimArgs{Stream: db.outboxKey(m.Shard), Group: OutboxGroup,
		Consumer: consumer, MinIdle: 0, Messages: []string{m.ID}}).Err()
}

// Done acknowledges and deletes a notification: delivered, refused for
// good, or expired. A push-mode token leaves Redis with it.
func (db *DB) Done(ctx context.Context, m OutboxMsg) error {
	key := db.outboxKey(m.Shard)
	_, err := db.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.XAck(ctx, key, OutboxGroup, m.ID)
		p.XDel(ctx, key, m.ID)
		return nil
	})
	return err
}

// RequestByID returns a request and its state, whoever its user is.
func (db *DB) RequestByID(ctx context.Context, id string) (*RequestState, error) {
	return db.RequestFor(ctx, id, "")
}

// DueExpiries returns up to n pending request ids of a shard whose expiry
// has passed.
func (db *DB) DueExpiries(ctx context.Context, shard int, n int64) ([]string, error) {
	return db.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{Key: db.tag(shard) + "expiries", Start: "-inf",
		Stop: itoa(ms(db.Now())), ByScore: true, Count: n}).Result()
}

// scriptExpire is lua/expire.lua; the names are its KEYS and ARGV as
// passed below, in order.
var scriptExpire = newAudited("expire", requestKeys, []string{"now_ms", "outbox_entry"})

// Expire moves a pending request past its expiry to expired, with its
// audit event and the notification its agent is owed, in one step. It
// reports whether it did (another node may have been first).
func (db *DB) Expire(ctx context.Context, r *Request, ob *Outbox, events []Event) (bool, error) {
	entry, err := outboxArg(ob)
	if err != nil {
		return false, err
	}
	now := db.Now()
	k := db.keysFor(r.ID, r.ClientID, r.UserID, "", now)
	res, err := db.runAudited(ctx, scriptExpire, k.shard, k.keys, []any{ms(now), entry}, events)
	if err != nil {
		return false, err
	}
	if res[0] == "ok" && entry != "" {
		db.nudgeOutbox()
	}
	return res[0] == "ok", nil
}

// ForgetExpiry drops a request id from its shard's expiry index (its
// record is gone).
func (db *DB) ForgetExpiry(ctx context.Context, id string) error {
	shard, ok := shardOfID(id)
	if !ok {
		return nil
	}
	return db.rdb.ZRem(ctx, db.tag(shard)+"expiries", id).Err()
}
