package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// Grant is what one approval allows: every token minted from it, and every
// token exchanged from those, carries its id.
type Grant struct {
	ID                   string          `json:"grant_id"`
	ClientID             string          `json:"client_id"`
	UserID               string          `json:"user_id"`
	Scope                string          `json:"scope"`
	AuthorizationDetails json.RawMessage `json:"authorization_details,omitempty"`
	CreatedAt            time.Time       `json:"created_at"`
	ExpiresAt            time.Time       `json:"expires_at"` // no token of the grant lives longer
}

func grantArgs(g *Grant) (id, rec string, exp int64, err error) {
	if g == nil {
		return "", "", 0, nil
	}
	b, err := json.Marshal(g)
	return g.ID, string(b), ms(g.ExpiresAt), err
}

// GrantsFor lists a user's unexpired grants, newest first.
func (db *DB) GrantsFor(ctx context.Context, user string) ([]*Grant, error) {
	t := db.tag(ShardOf(user))
	ids, err := db.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{Key: t + "grants:" + user, Start: "(" + itoa(ms(db.Now())), Stop: "+inf", ByScore: true}).Result()
	if err != nil || len(ids) == 0 {
		return nil, err
	}
	keys := make([]string, 0, 2*len(ids))
	for _, id := range ids {
		keys = append(keys, t+"grant:"+id)
	}
	for _, id := range ids {
		keys = append(keys, t+"rev:grant:"+id)
	}
	vals, err := db.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, err
	}
	var out []*Grant
	for i := range ids {
		s, ok := vals[i].(string)
		if !ok || vals[len(ids)+i] != nil { // gone or revoked
			continue
		}
		var g Grant
		if json.Unmarshal([]byte(s), &g) == nil {
			out = append(out, &g)
		}
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

// scriptRevokeGrant is lua/revoke_grant.lua; the names are its KEYS and ARGV as
// passed below, in order.
var scriptRevokeGrant = newAudited("revoke_grant", []string{"grant", "revocation"}, []string{"user", "now_ms"})

// RevokeGrant revokes a grant of user: every token of it, exchanged ones
// included, is inactive from now on. ErrNotFound when the grant is not
// the user's.
func (db *DB) RevokeGrant(ctx context.Context, user, grantID string, event Event) error {
	t := db.tag(ShardOf(user))
	res, err := db.runAudited(ctx, scriptRevokeGrant, ShardOf(user), []string{t + "grant:" + grantID, t + "rev:grant:" + grantID},
		[]any{user, ms(db.Now())}, []Event{event})
	if err != nil {
		return err
	}
	if res[0] != "ok" {
		return ErrNotFound
	}
	return nil
}

// scriptRevoke is lua/revoke.lua; the names are its KEYS and ARGV as
// passed below, in order.
var scriptRevoke = newAudited("revoke", []string{"revocation"}, []string{"value", "ttl_ms"})

// RevokeToken revokes one access token until it expires.
func (db *DB) RevokeToken(ctx context.Context, user, jti string, exp time.Time, event Event) error {
	ttl := max(exp.Sub(db.Now()), time.Second)
	_, err := db.runAudited(ctx, scriptRevoke, ShardOf(user), []string{db.tag(ShardOf(user)) + "rev:jti:" + jti},
		[]any{ms(db.Now()), ttl.Milliseconds()}, []Event{event})
	return err
}

// MaxTokenLifetime bounds how long an agent revocation must be kept: no
// token lives longer.
const MaxTokenLifetime = 25 * time.Hour

// RevokeAgent is the kill switch: every token issued up to now where
// client is an actor (for user only, when set) becomes inactive.
func (db *DB) RevokeAgent(ctx context.Context, client, user string, event Event) error {
	now := ms(db.Now())
	if user == "" {
		_, err := db.runAudited(ctx, scriptRevoke, dirShard, []string{db.dir() + "rev-agent:" + client},
			[]any{now, MaxTokenLifetime.Milliseconds()}, []Event{event})
		return err
	}
	shard := ShardOf(user)
	_, err := db.runAudited(ctx, scriptRevoke, shard, []string{db.tag(shard) + "rev:agent:" + client + ":" + user},
		[]any{now, MaxTokenLifetime.Milliseconds()}, []Event{event})
	return err
}

// TokenRef names what a token depends on, for the revocation check.
type TokenRef struct {
	User, JTI, GrantID string
	MandateID          string   // approval.mandate_id, when issued under a mandate
	Actors             []string // every client in the act chain
	IssuedAt           time.Time
}

// Revoked reports, in one pipelined round trip, whether a token was
// revoked itself, through its grant, or through any of its actors.
func (db *DB) Revoked(ctx context.Context, r TokenRef) (bool, string, error) {
	t := db.tag(ShardOf(r.User))
	p := db.rdb.Pipeline()
	jti := p.Exists(ctx, t+"rev:jti:"+r.JTI)
	grant := p.Exists(ctx, t+"rev:grant:"+r.GrantID)
	var mandate *redis.SliceCmd
	if r.MandateID != "" {
		mandate = p.HMGet(ctx, t+"mandate:"+r.MandateID, "user", "revoked_at")
	}
	agents := make([]*redis.StringCmd, 0, 2*len(r.Actors))
	for _, a := range r.Actors {
		agents = append(agents, p.Get(ctx, db.dir()+"rev-agent:"+a), p.Get(ctx, t+"rev:agent:"+a+":"+r.User))
	}
	if _, err := p.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return false, "", err
	}
	if jti.Val() == 1 {
		return true, "token revoked", nil
	}
	if r.GrantID != "" && grant.Val() == 1 {
		return true, "grant revoked", nil
	}
	if mandate != nil {
		// A mandate's record outlives its tokens (MandateGrace): one that
		// is gone, or another user's, fails closed.
		if v := mandate.Val(); len(v) < 2 || v[0] != r.User || v[1] != nil {
			return true, "mandate revoked", nil
		}
	}
	iat := ms(r.IssuedAt)
	for _, c := range agents {
		at, err := c.Int64()
		if err == nil && at >= iat {
			return true, "agent revoked", nil
		}
	}
	return false, "", nil
}
