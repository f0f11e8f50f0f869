package store

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// RequestState is a request with its current lifecycle state, as the
// device sees it.
type RequestState struct {
	Request  Request
	State    State
	Approval *Approval
}

// viewFields are the fields of a request hash its readers need, read
// with one HMGET (a script would add nothing to one command).
var viewFields = []string{"rec", "state", "exp", "approval"}

// viewOf is an HMGET reply of viewFields with "" for each missing field.
func viewOf(vals []any) []any {
	out := make([]any, len(vals))
	for i, v := range vals {
		if v == nil {
			v = ""
		}
		out[i] = v
	}
	return out
}

func (db *DB) requestKey(id string) (string, bool) {
	shard, ok := shardOfID(id)
	if !ok {
		return "", false
	}
	return db.tag(shard) + "req:" + id, true
}

// RequestFor returns a request of user ("" for any user), ErrNotFound when
// it does not exist or belongs to someone else. Expiry is applied on read.
func (db *DB) RequestFor(ctx context.Context, id, user string) (*RequestState, error) {
	key, ok := db.requestKey(id)
	if !ok {
		return nil, ErrNotFound
	}
	res, err := db.rdb.HMGet(ctx, key, viewFields...).Result()
	if err != nil {
		return nil, err
	}
	return db.decodeState(viewOf(res), user)
}

func (db *DB) decodeState(res []any, user string) (*RequestState, error) {
	if s, _ := res[0].(string); s == "" {
		return nil, ErrNotFound
	}
	r, ap, err := decodeRecApproval(res[0], res[3])
	if err != nil {
		return nil, err
	}
	if user != "" && r.UserID != user {
		return nil, ErrNotFound
	}
	st := State(res[1].(string))
	if (st == Pending || st == Approved) && !db.Now().Before(r.ExpiresAt) {
		st = Expired
	}
	return &RequestState{Request: *r, State: st, Approval: ap}, nil
}

// PendingFor lists a user's device-pending requests, newest first.
func (db *DB) PendingFor(ctx context.Context, user string) ([]*RequestState, error) {
	now := db.Now()
	t := db.tag(ShardOf(user))
	ids, err := db.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{Key: t + "pending:" + user, Start: "(" + itoa(ms(now)), Stop: "+inf", ByScore: true}).Result()
	if err != nil {
		return nil, err
	}
	cmds := make([]*redis.SliceCmd, len(ids))
	_, err = db.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HMGet(ctx, t+"req:"+id, viewFields...)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var out []*RequestState
	for _, c := range cmds {
		res, err := c.Result()
		if err != nil {
			return nil, err
		}
		rs, err := db.decodeState(viewOf(res), user)
		if err != nil || rs.State != Pending {
			continue
		}
		out = append(out, rs)
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	// Requests with equal expiry keep creation order; sort newest first.
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].Request.CreatedAt.After(out[j-1].Request.CreatedAt); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out, nil
}

// Decision outcomes.
var (
	// ErrDecided is returned when the request was already decided or has
	// expired: the first decision wins.
	ErrDecided = fmt.Errorf("store: request already decided or expired")
)

// Decision is a device's decision to record.
type Decision struct {
	Approve  bool
	Approval *Approval // when approving
	Outbox   *Outbox
	Grant    *Grant // when approving
	// Mandate, when approving a mandate request, is created in the same
	// script as the decision.
	Mandate *Mandate
	Events  []Event
}

// scriptDecide is lua/decide.lua; the names are its KEYS and ARGV as
// passed below, in order.
var scriptDecide = newAudited("decide", append(requestKeys[:len(requestKeys):len(requestKeys)], mandateKeyNames...),
	[]string{"verdict", "user", "now_ms", "approval", "amount", "outbox_entry", "grant_rec", "grant_exp_ms",
		"mandate_rec", "mandate_until_ms", "mandate_budget", "mandate_max_uses", "mandate_ttl_ms",
		"bucket_5m", "bucket_hour", "grant_id"})

// Decide records the first decision on a pending request of r.UserID.
func (db *DB) Decide(ctx context.Context, r *Request, d Decision) error {
	now := db.Now()
	ap := []byte("")
	var err error
	if d.Approval != nil {
		if ap, err = json.Marshal(d.Approval); err != nil {
			return err
		}
	}
	ob, err := outboxArg(d.Outbox)
	if err != nil {
		return err
	}
	verdict := "deny"
	if d.Approve {
		verdict = "approve"
	}
	grantID, grantRec, grantExp, err := grantArgs(d.Grant)
	if err != nil {
		return err
	}
	margs, err := db.mandateCreateArgs(d.Mandate, now)
	if err != nil {
		return err
	}
	k := db.keysFor(r.ID, r.ClientID, r.UserID, grantID, now)
	mid := ""
	if d.Mandate != nil {
		mid = d.Mandate.ID
	}
	keys := append(k.keys, db.mandateKeys(r.UserID, mid)...)
	args := append([]any{verdict, r.UserID, ms(now), ap, r.Amount, ob, grantRec, grantExp}, margs...)
	args = append(args, bucket5(now), bucketHour(now), grantID)
	res, err := db.runAudited(ctx, scriptDecide, k.shard, keys, args, d.Events)
	if err != nil {
		return err
	}
	// Every counter moved in the script: nothing after it can fail a
	// decision that is already committed.
	switch res[0] {
	case "ok":
		if ob != "" {
			db.nudgeOutbox()
		}
		return nil
	case "missing":
		return ErrNotFound
	}
	return ErrDecided
}
