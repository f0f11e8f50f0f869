package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// Event is one audit record. Members that do not apply stay empty and are
// omitted. It never holds a secret or a token value.
type Event struct {
	ID          string          `json:"id,omitempty"` // "<stream>/<entry id>", set on read, not hashed
	At          time.Time       `json:"at"`
	Type        string          `json:"type"`
	RequestID   string          `json:"request_id,omitempty"`
	GrantID     string          `json:"grant_id,omitempty"`
	MandateID   string          `json:"mandate_id,omitempty"`
	User        string          `json:"user,omitempty"`
	Agent       string          `json:"agent,omitempty"`
	Actors      []string        `json:"actors,omitempty"`
	Action      json.RawMessage `json:"action,omitempty"`
	Risk        json.RawMessage `json:"risk,omitempty"`
	Input       json.RawMessage `json:"input,omitempty"` // the recorded decision input, for simulation
	Path        string          `json:"path,omitempty"`
	DeviceID    string          `json:"device_id,omitempty"`
	DecisionJWT string          `json:"decision_jwt,omitempty"`
	TokenJTI    string          `json:"token_jti,omitempty"`
	IP          string          `json:"ip,omitempty"`
	Detail      string          `json:"detail,omitempty"`
	Error       string          `json:"error,omitempty"` // the OAuth error code of a refusal
	PrevHash    string          `json:"prev_hash"`
	Hash        string          `json:"hash,omitempty"` // SHA-256 of the entry serialised without id and hash
}

// dirShard is the pseudo-shard of events that belong to no user (rule
// changes, client registrations): the {dir} slot.
const dirShard = Shards

func (db *DB) shardTag(shard int) string {
	if shard == dirShard {
		return db.dir()
	}
	return db.tag(shard)
}

func (db *DB) auditKey(shard int) string { return db.shardTag(shard) + "audit" }
func (db *DB) headKey(shard int) string  { return db.shardTag(shard) + "audit-head" }

// hashEvent returns the body to store and its hash; e.PrevHash must be set.
func hashEvent(e Event) (body []byte, hash string, err error) {
	e.ID, e.Hash = "", ""
	body, err = json.Marshal(e)
	if err != nil {
		return nil, "", err
	}
	sum := sha256.Sum256(body)
	return body, hex.EncodeToString(sum[:]), nil
}

// auditArgs chains events after prev and returns the script arguments:
// prev, n, then hash and body per event.
func auditArgs(prev string, events []Event) ([]any, error) {
	args := []any{prev, len(events)}
	for _, e := range events {
		e.PrevHash = prev
		body, h, err := hashEvent(e)
		if err != nil {
			return nil, err
		}
		args = append(args, h, body)
		prev = h
	}
	return args, nil
}

// staleHead is the reply of a script whose audit head moved.
const staleHead = "stale"

// runAudited runs script with keys (the audit stream and head appended)
// and args (the audit arguments appended). Writers of one shard's chain
// on this node take turns (a per-shard lock), so they never race each
// other; when another node moved the head in between, the script changes
// nothing and answers the new head, and the write is tried again. The
// reply's first element is the status and the rest the values.
func (db *DB) runAudited(ctx context.Context, s *luaScript, shard int, keys []string, args []any, events []Event) ([]any, error) {
	keys = append(keys, db.auditKey(shard), db.headKey(shard))
	lock := &db.shardLocks[shard]
	lock.Lock()
	defer lock.Unlock()
	for attempt := 0; attempt < 100; attempt++ {
		prev := db.head(shard)
		aargs, err := auditArgs(prev, events)
		if err != nil {
			return nil, err
		}
		all := append(append([]any{}, args...), aargs...)
		res, err := s.Run(ctx, db.rdb, keys, all...).Slice()
		if err != nil {
			return nil, err
		}
		if len(res) == 2 && res[0] == staleHead {
			cur, _ := res[1].(string)
			db.setHead(shard, cur)
			continue
		}
		if len(events) > 0 && res[0] == "ok" {
			// The script wrote our chain: remember its head.
			db.setHead(shard, aargs[len(aargs)-2].(string))
		}
		return res, nil
	}
	return nil, fmt.Errorf("store: audit chain of shard %d too contended", shard)
}

func (db *DB) head(shard int) string {
	if shard == dirShard {
		return db.dirHead
	}
	return db.lastHash[shard]
}

func (db *DB) setHead(shard int, h string) {
	if shard == dirShard {
		db.dirHead = h
		return
	}
	db.lastHash[shard] = h
}

// scriptAuditOnly is lua/audit_only.lua; the names are its KEYS and ARGV as
// passed below, in order.
var scriptAuditOnly = newLua("audit_only", []string{"audit", "audit_head"}, []string{"audit..."})

// Audit appends events that record no state change of their own (a read
// that must be noted, an introspection refusal) to the user's shard ("" for
// the directory chain).
func (db *DB) Audit(ctx context.Context, user string, events ...Event) error {
	shard := dirShard
	if user != "" {
		shard = ShardOf(user)
	}
	_, err := db.runAudited(ctx, scriptAuditOnly, shard, nil, nil, events)
	return err
}
