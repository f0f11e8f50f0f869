package store

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// KEYS 1 stream, 2 anchor. ARGV 1 the last exported entry id. The anchor
// keeps the hash of the newest trimmed event so that verification can
// start from it.
var scriptTrim = redis.NewScript(`
local last = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #last == 0 then return 0 end
local fields = last[1][2]
local h = ''
for i = 1, #fields, 2 do if fields[i] == 'h' then h = fields[i+1] end end
local before = redis.call('XLEN', KEYS[1])
redis.call('XTRIM', KEYS[1], 'MINID', ARGV[1])
-- XTRIM MINID keeps ids >= MINID: delete the exported entry itself too.
redis.call('XDEL', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], h)
return before - redis.call('XLEN', KEYS[1])
`)

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
		n, err := scriptTrim.Run(ctx, db.rdb, []string{db.auditKey(shard), db.shardTag(shard) + "audit-anchor"}, id).Int64()
		if err != nil {
			return total, err
		}
		total += n
	}
	return total, nil
}
