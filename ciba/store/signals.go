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
// function that assembles them once p has run.
func (db *DB) queueSignals(ctx context.Context, p redis.Pipeliner, client, user string, names []string, now time.Time) func() Signals {
	t := db.tag(ShardOf(user))
	au := t + "c:au:" + client + ":" + user + ":"
	u := t + "c:u:" + user + ":"
	fives := func(at func(int64) string) []string {
		b := bucket5(now)
		out := make([]string, 12)
		for i := range out {
			out[i] = at(b - int64(i))
		}
		return out
	}
	hours := func(prefix string) []string {
		b := bucketHour(now)
		out := make([]string, 24)
		for i := range out {
			out[i] = prefix + itoa(b-int64(i))
		}
		return out
	}
	sum := func(cmd *redis.SliceCmd) float64 {
		var total float64
		for _, v := range cmd.Val() {
			if str, ok := v.(string); ok {
				f, _ := strconv.ParseFloat(str, 64)
				total += f
			}
		}
		return total
	}
	var s Signals
	var sets []func()
	for _, n := range names {
		switch n {
		case SigAgentRequests1h:
			// The agent-wide count is kept per shard: one read per shard.
			cs := make([]*redis.SliceCmd, Shards)
			for sh := range cs {
				cs[sh] = p.MGet(ctx, fives(func(b int64) string { return db.agentBucketKey(sh, client, b) })...)
			}
			sets = append(sets, func() {
				var n float64
				for _, c := range cs {
					n += sum(c)
				}
				s.AgentRequests1h = int64(n)
			})
		case SigAgentUserRequests1h:
			c := p.MGet(ctx, fives(func(b int64) string { return au + "r:" + itoa(b) })...)
			sets = append(sets, func() { s.AgentUserRequests1h = int64(sum(c)) })
		case SigUserPending:
			c := p.ZCount(ctx, t+"pending:"+user, "("+itoa(ms(now)), "+inf")
			sets = append(sets, func() { s.UserPending = c.Val() })
		case SigAgentUserDenials24h:
			c := p.MGet(ctx, hours(au+"d:")...)
			sets = append(sets, func() { s.AgentUserDenials24h = int64(sum(c)) })
		case SigUserSpend24h:
			c := p.MGet(ctx, hours(u+"s:")...)
			sets = append(sets, func() { s.UserSpend24h = sum(c) })
		case SigAgentUserSpend24h:
			c := p.MGet(ctx, hours(au+"s:")...)
			sets = append(sets, func() { s.AgentUserSpend24h = sum(c) })
		case SigFirstTime:
			c := p.Exists(ctx, au+"approved")
			sets = append(sets, func() { s.FirstTime = c.Val() == 0 })
		}
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
var scriptLookup = newLua("lookup", []string{"client", "user_by_id", "user_by_email"}, []string{"user_prefix", "devices_prefix"})

// LookupAuthorize reads, in one pipelined round trip, the client, the
// user a login_hint names (by id or email) and, taking the hint as a user
// id, the named signals.
func (db *DB) LookupAuthorize(ctx context.Context, clientID, hint string, names []string, now time.Time) (Lookup, error) {
	return db.LookupAuthorizeMandate(ctx, clientID, hint, "", names, now)
}

// LookupAuthorizeMandate is LookupAuthorize that also reads, in the same
// round trip, the mandate named by mandateID, taking the hint as its
// user's id.
func (db *DB) LookupAuthorizeMandate(ctx context.Context, clientID, hint, mandateID string, names []string, now time.Time) (Lookup, error) {
	var out Lookup
	keys := []string{db.clientKey(clientID), db.userKey(hint), db.emailKey(hint)}
	args := []any{db.userKey(""), db.userDevicesKey("")}
	p := db.rdb.Pipeline()
	look := scriptLookup.EvalSha(ctx, p, keys, args...)
	var sig func() Signals
	if len(names) > 0 && hint != "" {
		sig = db.queueSignals(ctx, p, clientID, hint, names, now)
	}
	var mandate *redis.SliceCmd
	if mandateID != "" && hint != "" && validMandateID(mandateID) {
		mandate = db.queueMandate(ctx, p, hint, mandateID)
	}
	_, err := p.Exec(ctx)
	if err != nil && !errors.Is(err, redis.Nil) && !isNoScript(look.Err()) {
		return out, err
	}
	res, err := look.Slice()
	if isNoScript(err) {
		res, err = scriptLookup.Eval(ctx, db.rdb, keys, args...).Slice()
	}
	if err != nil {
		return out, err
	}
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
		if sig != nil && out.User.ID == hint {
			out.Signals, out.SignalsFor = sig(), hint
		}
		if mandate != nil && out.User.ID == hint {
			if out.Mandate, err = decodeMandate(mandate.Val()); err != nil {
				return out, err
			}
			out.MandateRead = true
		}
	}
	return out, nil
}

func isNoScript(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT")
}
