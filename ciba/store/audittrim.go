package store

import (
	"context"
	"time"
)

// scriptTrim is lua/trim.lua; the names are its KEYS and ARGV as
// passed below, in order.
var scriptTrim = newLua("trim", []string{"stream", "anchor"}, []string{"last_id", "last_hash"})

// ExportOlder calls emit for every event older than cutoff, shard by
// shard, oldest first, and returns per shard the id of the last event it
// emitted (the caller trims only what it has safely written).
func (db *DB) ExportOlder(ctx context.Context, cutoff time.Time, emit func(Event) error) (map[int]string, error) {
	last := map[int]string{}
	for shard := 0; shard <= Shards; shard++ {
		start := "-"
	scan:
		for {
			msgs, err := db.rdb.XRangeN(ctx, db.auditKey(shard), start, "+", 1000).Result()
			if err != nil {
				return last, err
			}
			for _, m := range msgs {
				se, err := parseEntry(shard, m)
				if err != nil {
					return last, err
				}
				// The event's own time decides; stop at the first newer one
				// so that nothing after an unexported event is trimmed.
				if !se.event.At.Before(cutoff) {
					break scan
				}
				if err := emit(se.event); err != nil {
					return last, err
				}
				last[shard] = m.ID
			}
			if len(msgs) < 1000 {
				break
			}
			start = "(" + msgs[len(msgs)-1].ID
		}
	}
	return last, nil
}

// TrimExported removes, per shard, the events up to and including the
// given entry ids: only events that were exported are ever trimmed.
func (db *DB) TrimExported(ctx context.Context, exported map[int]string) (int64, error) {
	var total int64
	for shard, id := range exported {
		msgs, err := db.rdb.XRangeN(ctx, db.auditKey(shard), id, id, 1).Result()
		if err != nil {
			return total, err
		}
		if len(msgs) == 0 {
			continue // trimmed already
		}
		n, err := scriptTrim.Run(ctx, db.rdb, []string{db.auditKey(shard), db.shardTag(shard) + "audit-anchor"}, id, entryHash(msgs[0])).Int64()
		if err != nil {
			return total, err
		}
		total += n
	}
	return total, nil
}
