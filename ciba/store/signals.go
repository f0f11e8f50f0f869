package store

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Signals are the velocity counters rules may read. Windows are made of
// buckets: the hour windows of five-minute buckets (between 55 and 60
// minutes of history), the day windows of hour buckets (23 to 24 hours).
type Signals struct {
	AgentRequests1h     int64
	AgentUserRequests1h int64
	UserPending         int64
	AgentUserDenials24h int64
	UserSpend24h        float64
	AgentUserSpend24h   float64
	FirstTime           bool
}

// Signal names, as the rules name them.
const (
	SigAgentRequests1h     = "agent_requests_1h"
	SigAgentUserRequests1h = "agent_user_requests_1h"
	SigUserPending         = "user_pending"
	SigAgentUserDenials24h = "agent_user_denials_24h"
	SigUserSpend24h        = "user_spend_24h"
	SigAgentUserSpend24h   = "agent_user_spend_24h"
	SigFirstTime           = "first_time"
)

// ReadSignals reads the named signals for an agent and a user in one
// pipelined round trip; unnamed signals are not read and stay zero.
func (db *DB) ReadSignals(ctx context.Context, client, user string, names []string, now time.Time) (Signals, error) {
	if len(names) == 0 {
		return Signals{}, nil
	}
	p := db.rdb.Pipeline()
	get := db.queueSignals(ctx, p, client, user, names, now)
	if _, err := p.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return Signals{}, err
	}
	return get(), nil
}

// queueSignals queues the reads of the named signals on p and returns the
// function that assembles them once p has run: one HMGET of the
// agent-user counters for all the agent-user signals named, one of the
// user's counters, one of the agent's per shard, one ZCOUNT.
func (db *DB) queueSignals(ctx context.Context, p redis.Pipeliner, client, user string, names []string, now time.Time) func() Signals {
	shard := ShardOf(user)
	// buckets names the fields of the n buckets up to b, newest first.
	buckets := func(prefix string, b int64, n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = prefix + itoa(b-int64(i))
		}
		return out
	}
	sum := func(vals []any) float64 {
		var total float64
		for _, v := range vals {
			if str, ok := v.(string); ok {
				f, _ := strconv.ParseFloat(str, 64)
				total += f
			}
		}
		return total
	}
	// The agent-user fields of every signal named are read by one HMGET:
	// agentUser adds a signal's fields and returns its share of the answer.
	var auFields []string
	var au *redis.SliceCmd
	agentUser := func(fields ...string) func() []any {
		from := len(auFields)
		auFields = append(auFields, fields...)
		to := len(auFields)
		return func() []any {
			if v := au.Val(); len(v) >= to {
				return v[from:to]
			}
			return nil
		}
	}
	var s Signals
	var sets []func()
	for _, n := range names {
		switch n {
		case SigAgentRequests1h:
			// The agent-wide count is kept per shard: one read per shard.
			fields := buckets("r:", bucket5(now), 12)
			cs := make([]*redis.SliceCmd, Shards)
			for sh := range cs {
				cs[sh] = p.HMGet(ctx, db.agentCountersKey(sh, client), fields...)
			}
			sets = append(sets, func() {
				var n float64
				for _, c := range cs {
					n += sum(c.Val())
				}
				s.AgentRequests1h = int64(n)
			})
		case SigAgentUserRequests1h:
			f := agentUser(buckets("r:", bucket5(now), 12)...)
			sets = append(sets, func() { s.AgentUserRequests1h = int64(sum(f())) })
		case SigUserPending:
			c := p.ZCount(ctx, db.tag(shard)+"pending:"+user, "("+itoa(ms(now)), "+inf")
			sets = append(sets, func() { s.UserPending = c.Val() })
		case SigAgentUserDenials24h:
			f := agentUser(buckets("d:", bucketHour(now), 24)...)
			sets = append(sets, func() { s.AgentUserDenials24h = int64(sum(f())) })
		case SigUserSpend24h:
			c := p.HMGet(ctx, db.userCountersKey(shard, user), buckets("s:", bucketHour(now), 24)...)
			sets = append(sets, func() { s.UserSpend24h = sum(c.Val()) })
		case SigAgentUserSpend24h:
			f := agentUser(buckets("s:", bucketHour(now), 24)...)
			sets = append(sets, func() { s.AgentUserSpend24h = sum(f()) })
		case SigFirstTime:
			f := agentUser("approved")
			sets = append(sets, func() { v := f(); s.FirstTime = v == nil || v[0] == nil })
		}
	}
	if len(auFields) > 0 {
		au = p.HMGet(ctx, db.agentUserCountersKey(shard, client, user), auFields...)
	}
	return func() Signals {
		for _, set := range sets {
			set()
		}
		return s
	}
}

// Lookup is what /bc-authorize reads before it decides: the client, the
// user a login_hint names, and that user's signals.
type Lookup struct {
	Client *Client // nil: no such client
	User   *User   // nil: no user by that id or email
	// Signals were read for the hint taken as a user id; SignalsFor says
	// which user they belong to ("" when the hint was not an id).
	Signals    Signals
	SignalsFor string
	// Mandate is the mandate named at /bc-authorize, read for the hint
	// taken as a user id (nil when absent or the hint was not an id);
	// MandateRead says whether it was read at all.
	Mandate     *MandateState
	MandateRead bool
}

// scriptLookup is lua/lookup.lua; the names are its KEYS and ARGV as
// passed below, in order.
var scriptLookup = newLua("lookup", []string{"client", "user_by_id", "user_by_email"}, []string{"user_prefix", "devices_prefix", "hint"})

// LookupAuthorize reads, in one pipelined round trip, the client, the
// user a login_hint names (by id or email) and, taking the hint as a user
// id, the named signals.
func (db *DB) LookupAuthorize(ctx context.Context, clientID, hint string, names []string, now time.Time) (Lookup, error) {
	return db.LookupAuthorizeMandate(ctx, clientID, hint, "", names, now, true)
}

// LookupAuthorizeMandate is LookupAuthorize that also reads, in the same
// round trip, the mandate named by mandateID, taking the hint as its
// user's id. With readClient false the caller has the client (its cache)
// and Lookup.Client may be nil.
//
// A hint without "@" (user ids have none) is read with plain commands;
// only a hint that may be an email takes the lookup script, which follows
// the email index in Redis. An email without "@" (admins may set one) is
// found by a second round trip through the script.
func (db *DB) LookupAuthorizeMandate(ctx context.Context, clientID, hint, mandateID string, names []string, now time.Time, readClient bool) (Lookup, error) {
	byID := hint != "" && !strings.Contains(hint, "@")
	p := db.rdb.Pipeline()
	var read func() (res []any, err error)
	if byID {
		cl := redis.NewStringCmd(ctx) // no client: ""
		if readClient {
			cl = p.Get(ctx, db.clientKey(clientID))
		}
		u, devs, email := p.Get(ctx, db.userKey(hint)), p.SCard(ctx, db.userDevicesKey(hint)), p.Exists(ctx, db.emailKey(hint))
		read = func() ([]any, error) {
			for _, c := range []*redis.StringCmd{cl, u} {
				if err := c.Err(); err != nil && !errors.Is(err, redis.Nil) {
					return nil, err
				}
			}
			if u.Val() == "" && email.Val() == 1 {
				return nil, errByEmail
			}
			return []any{cl.Val(), u.Val(), devs.Val()}, devs.Err()
		}
	} else {
		keys := []string{db.clientKey(clientID), db.userKey(hint), db.emailKey(hint)}
		args := []any{db.userKey(""), db.userDevicesKey(""), hint}
		look := scriptLookup.EvalSha(ctx, p, keys, args...)
		read = func() ([]any, error) {
			res, err := look.Slice()
			if isNoScript(err) {
				res, err = scriptLookup.Eval(ctx, db.rdb, keys, args...).Slice()
			}
			return res, err
		}
	}
	var sig func() Signals
	if len(names) > 0 && hint != "" {
		sig = db.queueSignals(ctx, p, clientID, hint, names, now)
	}
	var mandate *redis.SliceCmd
	if mandateID != "" && hint != "" && validMandateID(mandateID) {
		mandate = db.queueMandate(ctx, p, hint, mandateID)
	}
	if _, err := p.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) && !isNoScript(err) {
		return Lookup{}, err
	}
	res, err := read()
	if errors.Is(err, errByEmail) {
		return db.lookupByEmail(ctx, clientID, hint)
	}
	if err != nil {
		return Lookup{}, err
	}
	out, err := decodeLookup(res)
	if err != nil || out.User == nil || out.User.ID != hint {
		return out, err
	}
	if sig != nil {
		out.Signals, out.SignalsFor = sig(), hint
	}
	if mandate != nil {
		if out.Mandate, err = decodeMandate(mandate.Val()); err != nil {
			return out, err
		}
		out.MandateRead = true
	}
	return out, nil
}

// errByEmail: the hint named no user by id but is an email in the index.
var errByEmail = errors.New("store: hint is an email")

// lookupByEmail is the lookup of a hint found only in the email index:
// the script follows the index; signals and mandates are read for ids.
func (db *DB) lookupByEmail(ctx context.Context, clientID, hint string) (Lookup, error) {
	res, err := scriptLookup.Run(ctx, db.rdb, []string{db.clientKey(clientID), db.userKey(hint), db.emailKey(hint)},
		db.userKey(""), db.userDevicesKey(""), hint).Slice()
	if err != nil {
		return Lookup{}, err
	}
	return decodeLookup(res)
}

// decodeLookup reads the client, the user and its device count.
func decodeLookup(res []any) (Lookup, error) {
	var out Lookup
	var err error
	if c, _ := res[0].(string); c != "" {
		if out.Client, err = decodeClient([]byte(c), nil); err != nil {
			return out, err
		}
	}
	if u, _ := res[1].(string); u != "" {
		if out.User, err = decodeUser([]byte(u), nil); err != nil {
			return out, err
		}
		out.User.Devices, _ = res[2].(int64)
	}
	return out, nil
}

func isNoScript(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT")
}
