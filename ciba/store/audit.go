package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
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
// The raw members (action, risk, input: JSON from json.Marshal, the input
// the largest part of an event) are appended as they are, after the
// others: encoding/json would scan and compact each of them again.
func hashEvent(e Event) (body []byte, hash string, err error) {
	e.ID, e.Hash = "", ""
	raw := [...]struct {
		name string
		v    json.RawMessage
	}{{"action", e.Action}, {"risk", e.Risk}, {"input", e.Input}}
	e.Action, e.Risk, e.Input = nil, nil, nil
	head, err := json.Marshal(e)
	if err != nil {
		return nil, "", err
	}
	size := len(head)
	for _, r := range raw {
		size += len(r.name) + len(r.v) + 4
	}
	body = append(make([]byte, 0, size), head[:len(head)-1]...)
	for _, r := range raw {
		if len(r.v) > 0 {
			body = append(append(append(append(body, ',', '"'), r.name...), '"', ':'), r.v...)
		}
	}
	body = append(body, '}')
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

// chain is this node's queue of writes to one audit chain. Writes wait
// in the queue while a batch is under way; the committer then sends all
// that queued, each chained to the one before it, in one pipelined round
// trip. One committer per chain at a time, so this node's writers never
// race each other, and under load a round trip carries many writes
// instead of each writer waiting its turn for its own.
type chain struct {
	mu    sync.Mutex
	queue []*chainWrite
	busy  bool // a committer is running
}

// chainWrite is one script call waiting for its chain.
type chainWrite struct {
	ctx        context.Context
	script     *luaScript
	keys       []string
	args       []any
	events     []Event
	tries      int
	res        []any
	err        error
	done       chan struct{}
	reloadOnce bool
}

// maxChainTries bounds the retries of one write whose chain head another
// node keeps moving.
const maxChainTries = 100

// runAudited runs script with keys (the audit stream and head appended)
// and args (the audit arguments appended), as one of a batch of this
// node's writes to the shard's chain. When another node moved the head in
// between, the script changes nothing and answers the new head, and the
// write is tried again. The reply's first element is the status and the
// rest the values. A caller whose ctx ends first gets its error; its write
// may still be committed (as with any write whose answer was lost).
func (db *DB) runAudited(ctx context.Context, s *luaScript, shard int, keys []string, args []any, events []Event) ([]any, error) {
	keys = append(keys, db.auditKey(shard), db.headKey(shard))
	if err := s.check(keys, append(append([]any{}, args...), "", 0)); err != nil {
		return nil, err
	}
	w := &chainWrite{ctx: ctx, script: s, keys: keys, args: args, events: events, done: make(chan struct{})}
	c := &db.chains[shard]
	c.mu.Lock()
	c.queue = append(c.queue, w)
	if !c.busy {
		c.busy = true
		go db.commitChain(shard)
	}
	c.mu.Unlock()
	select {
	case <-w.done:
		return w.res, w.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// commitChain commits the shard's queued writes, batch after batch, until
// the queue is empty. Writes that found the head moved go first in the
// next batch, so this node's writes keep their order.
func (db *DB) commitChain(shard int) {
	c := &db.chains[shard]
	c.mu.Lock()
	for len(c.queue) > 0 {
		batch := c.queue
		c.queue = nil
		c.mu.Unlock()
		retry := db.commitBatch(shard, batch)
		c.mu.Lock()
		c.queue = append(retry, c.queue...)
	}
	c.busy = false
	c.mu.Unlock()
}

// commitBatch sends the batch in one pipeline, each write's events chained
// after the events of the write before it, and answers every write that is
// done; it returns those to try again (the head had moved, or Redis had
// not loaded the script).
func (db *DB) commitBatch(shard int, batch []*chainWrite) (retry []*chainWrite) {
	ctx, cancel := batchContext(batch)
	defer cancel()
	prev := db.head(shard)
	p := db.rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(batch))
	expect := make([]string, len(batch)) // the head each write expects
	lasts := make([]string, len(batch))  // the head after each write
	for i, w := range batch {
		aargs, err := auditArgs(prev, w.events)
		if err != nil {
			w.finish(nil, err)
			continue
		}
		expect[i] = prev
		if len(w.events) > 0 {
			prev = aargs[len(aargs)-2].(string)
		}
		lasts[i] = prev
		cmds[i] = w.script.EvalSha(ctx, p, w.keys, append(append([]any{}, w.args...), aargs...)...)
	}
	_, _ = p.Exec(ctx) // each command carries its own answer
	head := db.head(shard)
	for i, w := range batch {
		if cmds[i] == nil {
			continue
		}
		res, err := cmds[i].Slice()
		switch {
		case isNoScript(err) && !w.reloadOnce:
			w.reloadOnce = true
			if err := w.script.Load(ctx, db.rdb).Err(); err != nil {
				w.finish(nil, err)
				continue
			}
			retry = append(retry, w)
		case err != nil:
			w.finish(nil, err)
		case len(res) == 2 && res[0] == staleHead:
			head, _ = res[1].(string)
			if w.tries++; w.tries >= maxChainTries {
				w.finish(nil, fmt.Errorf("store: audit chain of shard %d too contended", shard))
				continue
			}
			retry = append(retry, w)
		case res[0] == "ok":
			head = lasts[i] // the script wrote our chain
			w.finish(res, nil)
		default:
			head = expect[i] // it passed the head check and wrote nothing
			w.finish(res, nil)
		}
	}
	db.setHead(shard, head)
	return retry
}

func (w *chainWrite) finish(res []any, err error) {
	w.res, w.err = res, err
	close(w.done)
}

// batchContext is the context of one pipelined batch: not cancelled when
// one caller goes away, and ending at the latest deadline of its callers.
func batchContext(batch []*chainWrite) (context.Context, context.CancelFunc) {
	var latest time.Time
	for _, w := range batch {
		d, ok := w.ctx.Deadline()
		if !ok {
			return context.WithCancel(context.WithoutCancel(batch[0].ctx))
		}
		if d.After(latest) {
			latest = d
		}
	}
	return context.WithDeadline(context.WithoutCancel(batch[0].ctx), latest)
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
