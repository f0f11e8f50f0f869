package store

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// AuditQuery filters the audit trail. Empty members do not filter.
type AuditQuery struct {
	User, Agent, Request, Type string
	Mandate                    string // events of requests under (and of) one mandate
	Since                      time.Time
	Limit                      int    // default 100, at most 1000
	Cursor                     string // from a previous page
}

// streams returns the shards a query must read.
func (q AuditQuery) streams() []int {
	if q.Request != "" {
		if s, ok := shardOfID(q.Request); ok {
			return []int{s}
		}
		return nil
	}
	if q.User != "" {
		return []int{ShardOf(q.User), dirShard}
	}
	all := make([]int, 0, Shards+1)
	for i := 0; i <= Shards; i++ {
		all = append(all, i)
	}
	return all
}

func (q AuditQuery) match(e *Event) bool {
	if q.User != "" && e.User != q.User {
		return false
	}
	if q.Agent != "" && e.Agent != q.Agent && !slices.Contains(e.Actors, q.Agent) {
		return false
	}
	if q.Request != "" && e.RequestID != q.Request {
		return false
	}
	if q.Mandate != "" && e.MandateID != q.Mandate {
		return false
	}
	if q.Type != "" && e.Type != q.Type && !strings.HasPrefix(e.Type, q.Type+".") {
		return false
	}
	return true
}

// ErrBadCursor is returned for a cursor that does not decode.
var ErrBadCursor = errors.New("store: bad audit cursor")

func decodeCursor(c string) (map[int]string, error) {
	out := map[int]string{}
	if c == "" {
		return out, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || json.Unmarshal(b, &out) != nil {
		return nil, ErrBadCursor
	}
	return out, nil
}

func encodeCursor(m map[int]string) string {
	b, _ := json.Marshal(m)
	return base64.RawURLEncoding.EncodeToString(b)
}

type streamEntry struct {
	shard int
	id    string
	ms    int64
	seq   int64
	event Event
}

func parseEntry(shard int, m redis.XMessage) (streamEntry, error) {
	body, _ := m.Values["e"].(string)
	var e Event
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		return streamEntry{}, err
	}
	e.Hash = entryHash(m)
	e.ID = fmt.Sprintf("%d-%s", shard, m.ID)
	msStr, seqStr, _ := strings.Cut(m.ID, "-")
	ms, _ := strconv.ParseInt(msStr, 10, 64)
	seq, _ := strconv.ParseInt(seqStr, 10, 64)
	return streamEntry{shard: shard, id: m.ID, ms: ms, seq: seq, event: e}, nil
}

// entryHash is the hash of a stream entry: the SHA-256 of its body, hex.
func entryHash(m redis.XMessage) string {
	body, _ := m.Values["e"].(string)
	sum := sha256.Sum256([]byte(body))
	return hex.EncodeToString(sum[:])
}

// AuditEntries returns audit events matching q, oldest first, and the
// cursor of the next page ("" when there is none).
func (db *DB) AuditEntries(ctx context.Context, q AuditQuery) ([]Event, string, error) {
	if q.Limit <= 0 {
		q.Limit = 100
	}
	q.Limit = min(q.Limit, 1000)
	cur, err := decodeCursor(q.Cursor)
	if err != nil {
		return nil, "", err
	}
	var all []streamEntry
	more := false
	for _, shard := range q.streams() {
		start := "-"
		if id, ok := cur[shard]; ok {
			start = "(" + id
		}
		found := 0
		for found < q.Limit {
			msgs, err := db.rdb.XRangeN(ctx, db.auditKey(shard), start, "+", 500).Result()
			if err != nil {
				return nil, "", err
			}
			for _, m := range msgs {
				se, err := parseEntry(shard, m)
				if err != nil {
					return nil, "", err
				}
				if q.match(&se.event) && (q.Since.IsZero() || !se.event.At.Before(q.Since)) {
					all = append(all, se)
					found++
					if found == q.Limit {
						break
					}
				}
			}
			if len(msgs) < 500 {
				break
			}
			start = "(" + msgs[len(msgs)-1].ID
		}
		if found == q.Limit {
			more = true
		}
	}
	sort.SliceStable(all, func(i, j int) bool {
		if all[i].ms != all[j].ms {
			return all[i].ms < all[j].ms
		}
		if all[i].shard != all[j].shard {
			return all[i].shard < all[j].shard
		}
		return all[i].seq < all[j].seq
	})
	if len(all) > q.Limit {
		all, more = all[:q.Limit], true
	}
	out := make([]Event, len(all))
	for i, se := range all {
		out[i] = se.event
		cur[se.shard] = se.id
	}
	next := ""
	if more && len(all) > 0 {
		next = encodeCursor(cur)
	}
	return out, next, nil
}

// decisionTypes are the events that record a decision of the rules with
// its input: a request left pending (risk.decision), approved or denied at
// once (request.approved, request.denied: one event for the decision and
// its outcome), and an AuthZEN evaluation.
var decisionTypes = map[string]bool{"risk.decision": true, "request.approved": true, "request.denied": true, "authzen.decision": true}

// LastDecisions returns the last n decisions of the rules with their
// recorded inputs (decisionTypes) across all shards, newest first: the
// inputs of rule simulation.
func (db *DB) LastDecisions(ctx context.Context, n int) ([]Event, error) {
	var all []streamEntry
	for shard := 0; shard < Shards; shard++ {
		end, found := "+", 0
		for found < n {
			msgs, err := db.rdb.XRevRangeN(ctx, db.auditKey(shard), end, "-", 500).Result()
			if err != nil {
				return nil, err
			}
			for _, m := range msgs {
				se, err := parseEntry(shard, m)
				if err != nil {
					return nil, err
				}
				if decisionTypes[se.event.Type] && len(se.event.Input) > 0 {
					all = append(all, se)
					if found++; found == n {
						break
					}
				}
			}
			if len(msgs) < 500 {
				break
			}
			end = "(" + msgs[len(msgs)-1].ID
		}
	}
	sort.SliceStable(all, func(i, j int) bool {
		if !all[i].event.At.Equal(all[j].event.At) {
			return all[i].event.At.After(all[j].event.At)
		}
		if all[i].ms != all[j].ms {
			return all[i].ms > all[j].ms
		}
		return all[i].seq > all[j].seq
	})
	if len(all) > n {
		all = all[:n]
	}
	out := make([]Event, len(all))
	for i, se := range all {
		out[i] = se.event
	}
	return out, nil
}

// AuditBreak describes the first event where a chain does not hold.
type AuditBreak struct {
	Stream  string `json:"stream"`
	EntryID string `json:"entry_id"`
	Reason  string `json:"reason"`
}

// AuditReport is the result of VerifyAudit.
type AuditReport struct {
	Checked int         `json:"checked"`
	OK      bool        `json:"ok"`
	Break   *AuditBreak `json:"first_broken,omitempty"`
}

// VerifyAudit recomputes every chain (each shard's and the directory's)
// and names the first broken event: an edited event fails its own hash, a
// deleted one breaks its successor's prev_hash (or the stored head, when
// it was the last).
func (db *DB) VerifyAudit(ctx context.Context) (AuditReport, error) {
	var rep AuditReport
	for shard := 0; shard <= Shards; shard++ {
		anchor, err := db.rdb.Get(ctx, db.shardTag(shard)+"audit-anchor").Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return rep, err
		}
		prev, start := anchor, "-"
		name := fmt.Sprintf("shard %d", shard)
		if shard == dirShard {
			name = "directory"
		}
		for {
			msgs, err := db.rdb.XRangeN(ctx, db.auditKey(shard), start, "+", 1000).Result()
			if err != nil {
				return rep, err
			}
			for _, m := range msgs {
				rep.Checked++
				body, _ := m.Values["e"].(string)
				h := entryHash(m)
				var e Event
				if json.Unmarshal([]byte(body), &e) != nil {
					rep.Break = &AuditBreak{name, fmt.Sprintf("%d-%s", shard, m.ID), "the event is not valid JSON"}
					return rep, nil
				}
				if stored, ok := m.Values["h"].(string); ok && stored != h {
					// Entries written before hashes were left to readers
					// carry their own.
					rep.Break = &AuditBreak{name, fmt.Sprintf("%d-%s", shard, m.ID), "the event was edited: its hash does not match its content"}
					return rep, nil
				}
				if e.PrevHash != prev {
					rep.Break = &AuditBreak{name, fmt.Sprintf("%d-%s", shard, m.ID), "prev_hash does not match the event before it: that event was edited, or an event was removed or reordered"}
					return rep, nil
				}
				prev = h
			}
			if len(msgs) < 1000 {
				break
			}
			start = "(" + msgs[len(msgs)-1].ID
		}
		head, err := db.rdb.Get(ctx, db.headKey(shard)).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return rep, err
		}
		if head != prev {
			rep.Break = &AuditBreak{name, "end", "the chain head does not match the last event: the newest events were removed"}
			return rep, nil
		}
	}
	rep.OK = true
	return rep, nil
}
