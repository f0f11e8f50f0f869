package store

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Mandate is a user's signed intent: what an agent may do for them without
// asking again, within a budget, a number of uses and an end. It lives in
// the user's shard, next to the requests that create and spend it, so that
// creating and charging it are parts of the request scripts.
type Mandate struct {
	ID          string          `json:"id"`
	ClientID    string          `json:"client_id"`
	UserID      string          `json:"user_id"`
	Intent      string          `json:"intent"`
	Actions     json.RawMessage `json:"actions"`
	Budget      json.RawMessage `json:"budget,omitempty"` // {"currency","amount"} as signed
	Currency    string          `json:"currency,omitempty"`
	BudgetCents int64           `json:"budget_cents"` // -1: no budget
	MaxUses     int64           `json:"max_uses"`     // 0: unlimited
	ValidUntil  time.Time       `json:"valid_until"`
	CreatedAt   time.Time       `json:"created_at"`
	RequestID   string          `json:"request_id"`
	DeviceID    string          `json:"device_id"`
	DecisionJTI string          `json:"decision_jti"`
	// Entry is the intent_mandate entry exactly as the device signed it
	// (its ad_hash covers the request's whole authorization_details).
	Entry json.RawMessage `json:"entry"`
	// DeviceJWK is the public key of the device that signed it, kept so
	// the signature can be checked offline after the device is removed.
	DeviceJWK json.RawMessage `json:"device_jwk,omitempty"`
}

// MandateState is a mandate with what was spent and used under it.
type MandateState struct {
	Mandate
	SpentCents int64
	Uses       int64
	RevokedAt  *time.Time
	Taken      []MandateTaken
}

// MandateTaken is one request approved under a mandate.
type MandateTaken struct {
	RequestID            string          `json:"request_id"`
	At                   time.Time       `json:"at"`
	AuthorizationDetails json.RawMessage `json:"authorization_details,omitempty"`
	AmountCents          int64           `json:"amount_cents"`
}

// Mandate statuses.
const (
	MandateActive    = "active"
	MandateExpired   = "expired"
	MandateRevoked   = "revoked"
	MandateExhausted = "exhausted"
)

// Status is the mandate's status at now: revoked wins over expired, which
// wins over exhausted.
func (m *MandateState) Status(now time.Time) string {
	switch {
	case m.RevokedAt != nil:
		return MandateRevoked
	case !now.Before(m.ValidUntil):
		return MandateExpired
	case m.BudgetCents >= 0 && m.SpentCents >= m.BudgetCents, m.MaxUses > 0 && m.Uses >= m.MaxUses:
		return MandateExhausted
	}
	return MandateActive
}

// MandateCharge is what a request under a mandate takes from it; the
// request script re-checks and takes it atomically.
type MandateCharge struct {
	ID          string
	AmountCents int64
	Uses        int64
}

// ErrMandateSpent is returned by CreateRequest when the mandate no longer
// allows the charge (revoked, expired, or spent by a concurrent request):
// nothing was stored.
var ErrMandateSpent = errors.New("store: the mandate no longer allows this request")

// MandateGrace keeps a mandate's record after its end for as long as a
// token issued under it can live, so that its revocation still reaches
// them; expiry itself is checked on every read.
const MandateGrace = MaxTokenLifetime

func (db *DB) mandateKey(user, id string) string {
	return db.tag(ShardOf(user)) + "mandate:" + id
}

// mandateKeys are the keys the request scripts take after keysFor's 11:
// 12 the mandate, 13 its taken list, 14 the user's mandate index.
func (db *DB) mandateKeys(user, id string) []string {
	k := db.mandateKey(user, id)
	return []string{k, k + ":taken", db.tag(ShardOf(user)) + "mandates:" + user}
}

// mandateKeyNames name mandateKeys in the request scripts' declarations.
var mandateKeyNames = []string{"mandate", "mandate_taken", "user_mandates"}

// mandateCreateArgs are the decision script's mandate arguments: record,
// end (ms), budget (cents, -1 none), max uses (0 unlimited), gc ttl (ms).
func (db *DB) mandateCreateArgs(m *Mandate, now time.Time) ([]any, error) {
	if m == nil {
		return []any{"", 0, -1, 0, 0}, nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	ttl := m.ValidUntil.Sub(now) + MandateGrace
	return []any{string(b), ms(m.ValidUntil), m.BudgetCents, m.MaxUses, ttl.Milliseconds()}, nil
}

// mandateChargeArgs are the create script's: id, amount (cents), uses,
// the taken entry.
func mandateChargeArgs(c *MandateCharge, r *Request, now time.Time) ([]any, error) {
	if c == nil {
		return []any{"", 0, 0, ""}, nil
	}
	b, err := json.Marshal(MandateTaken{RequestID: r.ID, At: now.UTC(), AuthorizationDetails: r.AuthorizationDetails, AmountCents: c.AmountCents})
	if err != nil {
		return nil, err
	}
	return []any{c.ID, c.AmountCents, c.Uses, string(b)}, nil
}

// mandateFields are the hash fields a mandate read takes.
var mandateFields = []string{"rec", "spent", "uses", "revoked_at"}

// decodeMandate reads an HMGET of mandateFields; nil when absent.
func decodeMandate(vals []any) (*MandateState, error) {
	if len(vals) < 4 {
		return nil, nil
	}
	rec, _ := vals[0].(string)
	if rec == "" {
		return nil, nil
	}
	m := &MandateState{}
	if err := json.Unmarshal([]byte(rec), &m.Mandate); err != nil {
		return nil, err
	}
	m.SpentCents = intOf(vals[1])
	m.Uses = intOf(vals[2])
	if s, ok := vals[3].(string); ok && s != "" {
		t := time.UnixMilli(intOf(s)).UTC()
		m.RevokedAt = &t
	}
	return m, nil
}

func intOf(v any) int64 {
	s, _ := v.(string)
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}

// queueMandate adds the read of a mandate of user to a pipeline.
func (db *DB) queueMandate(ctx context.Context, p redis.Pipeliner, user, id string) *redis.SliceCmd {
	return p.HMGet(ctx, db.mandateKey(user, id), mandateFields...)
}

// MandateOf reads a mandate of user (with what was taken under it);
// ErrNotFound when it does not exist or is another user's.
func (db *DB) MandateOf(ctx context.Context, user, id string) (*MandateState, error) {
	if user == "" || !validMandateID(id) {
		return nil, ErrNotFound
	}
	out, err := db.readMandates(ctx, []string{user}, []string{id})
	if err != nil {
		return nil, err
	}
	if len(out) == 0 || out[0].UserID != user {
		return nil, ErrNotFound
	}
	return out[0], nil
}

// MandateByID finds a mandate by id alone (the admin's view): its shard
// is not in the id, so every shard is asked in one pipelined round trip.
func (db *DB) MandateByID(ctx context.Context, id string) (*MandateState, error) {
	if !validMandateID(id) {
		return nil, ErrNotFound
	}
	p := db.rdb.Pipeline()
	cmds := make([]*redis.SliceCmd, Shards)
	for s := range Shards {
		cmds[s] = p.HMGet(ctx, db.tag(s)+"mandate:"+id, "user")
	}
	if _, err := p.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	for _, c := range cmds {
		if u, ok := c.Val()[0].(string); ok && u != "" {
			return db.MandateOf(ctx, u, id)
		}
	}
	return nil, ErrNotFound
}

func validMandateID(id string) bool {
	if len(id) != IDLen {
		return false
	}
	for _, c := range []byte(id) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// MandatesFor lists the mandates of users (every user when users is
// nil) whose agent is client ("" for any), newest first.
func (db *DB) MandatesFor(ctx context.Context, users []string, client string) ([]*MandateState, error) {
	if users == nil {
		all, err := db.Users(ctx)
		if err != nil {
			return nil, err
		}
		for _, u := range all {
			users = append(users, u.ID)
		}
	}
	p := db.rdb.Pipeline()
	idx := make([]*redis.StringSliceCmd, len(users))
	for i, u := range users {
		idx[i] = p.SMembers(ctx, db.tag(ShardOf(u))+"mandates:"+u)
	}
	if _, err := p.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	var us, ids []string
	for i, c := range idx {
		for _, id := range c.Val() {
			us, ids = append(us, users[i]), append(ids, id)
		}
	}
	list, err := db.readMandates(ctx, us, ids)
	if err != nil {
		return nil, err
	}
	out := list[:0]
	for _, m := range list {
		if client == "" || m.ClientID == client {
			out = append(out, m)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].CreatedAt.After(out[j].CreatedAt) })
	return out, nil
}

// readMandates reads mandates ids[i] of users[i] with their taken lists
// in one pipeline; gone ones are left out.
func (db *DB) readMandates(ctx context.Context, users, ids []string) ([]*MandateState, error) {
	p := db.rdb.Pipeline()
	recs := make([]*redis.SliceCmd, len(ids))
	taken := make([]*redis.StringSliceCmd, len(ids))
	for i, id := range ids {
		recs[i] = db.queueMandate(ctx, p, users[i], id)
		taken[i] = p.LRange(ctx, db.mandateKey(users[i], id)+":taken", 0, -1)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	if _, err := p.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	var out []*MandateState
	for i := range ids {
		m, err := decodeMandate(recs[i].Val())
		if err != nil {
			return nil, err
		}
		if m == nil {
			continue
		}
		for _, s := range taken[i].Val() {
			var t MandateTaken
			if json.Unmarshal([]byte(s), &t) == nil {
				m.Taken = append(m.Taken, t)
			}
		}
		out = append(out, m)
	}
	return out, nil
}

// scriptRevokeMandate is lua/revoke_mandate.lua.
var scriptRevokeMandate = newAudited("revoke_mandate", []string{"mandate"}, []string{"user", "now_ms"})

// RevokeMandate revokes a mandate of m.UserID: later requests under it
// fail the charge's re-check, and every token issued under it is
// inactive. Revoking it again changes nothing (and audits nothing).
// ErrNotFound when it is not a mandate of user.
func (db *DB) RevokeMandate(ctx context.Context, user, id string, event Event) error {
	if !validMandateID(id) {
		return ErrNotFound
	}
	event.MandateID = id
	res, err := db.runAudited(ctx, scriptRevokeMandate, ShardOf(user), []string{db.mandateKey(user, id)},
		[]any{user, ms(db.Now())}, []Event{event})
	if err != nil {
		return err
	}
	if res[0] == "missing" {
		return ErrNotFound
	}
	return nil
}
