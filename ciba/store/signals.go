package store

import (
	"context"
	"strconv"
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
	var s Signals
	if len(names) == 0 {
		return s, nil
	}
	k := db.keysFor("", client, user, "", now)
	t := db.tag(k.shard)
	au := t + "c:au:" + client + ":" + user + ":"
	u := t + "c:u:" + user + ":"
	fives := func(prefix string, at func(int64) string) []string {
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
	var sets []func()
	p := db.rdb.Pipeline()
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
	for _, n := range names {
		switch n {
		case SigAgentRequests1h:
			c := p.MGet(ctx, fives("", func(b int64) string { return db.agentBucketKey(client, b) })...)
			sets = append(sets, func() { s.AgentRequests1h = int64(sum(c)) })
		case SigAgentUserRequests1h:
			c := p.MGet(ctx, fives("", func(b int64) string { return au + "r:" + itoa(b) })...)
			sets = append(sets, func() { s.AgentUserRequests1h = int64(sum(c)) })
		case SigUserPending:
			c := p.ZCount(ctx, k.keys[1], "("+itoa(ms(now)), "+inf")
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
	if len(sets) == 0 {
		return s, nil
	}
	if _, err := p.Exec(ctx); err != nil {
		return Signals{}, err
	}
	for _, set := range sets {
		set()
	}
	return s, nil
}
