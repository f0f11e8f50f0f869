package store

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"time"

	"github.com/redis/go-redis/v9"
)

// Client is a registered OAuth client (an agent or a resource server), as
// stored. SecretHash is the SHA-256 of the client secret; the secret itself
// is never stored.
type Client struct {
	ID                        string          `json:"client_id"`
	Name                      string          `json:"client_name,omitempty"`
	SecretHash                []byte          `json:"secret_hash,omitempty"`
	AuthMethod                string          `json:"token_endpoint_auth_method"`
	JWKS                      json.RawMessage `json:"jwks,omitempty"`
	DeliveryMode              string          `json:"backchannel_token_delivery_mode"`
	NotificationEndpoint      string          `json:"backchannel_client_notification_endpoint,omitempty"`
	RequestSigningAlg         string          `json:"backchannel_authentication_request_signing_alg,omitempty"`
	UserCodeParameter         bool            `json:"backchannel_user_code_parameter,omitempty"`
	GrantTypes                []string        `json:"grant_types"`
	Scope                     string          `json:"scope,omitempty"`
	Agent                     AgentInfo       `json:"agent"`
	DelegatesTo               []string        `json:"delegates_to,omitempty"`
	MaxDelegationDepth        int             `json:"max_delegation_depth,omitempty"`
	ResourceServer            bool            `json:"resource_server,omitempty"`
	PolicyEnforcementPoint    bool            `json:"policy_enforcement_point,omitempty"`
	DPoPBoundAccessTokens     bool            `json:"dpop_bound_access_tokens,omitempty"`
	AllowPrivateNotifications bool            `json:"allow_private_notification_endpoint,omitempty"`
	Disabled                  bool            `json:"disabled,omitempty"`
	CreatedAt                 time.Time       `json:"created_at"`
}

// AgentInfo describes the agent behind a client; rules read it.
type AgentInfo struct {
	TrustTier string `json:"trust_tier,omitempty"`
	Owner     string `json:"owner,omitempty"`
	Model     string `json:"model,omitempty"`
	Version   string `json:"version,omitempty"`
}

// User is a person agents act for.
type User struct {
	ID         string         `json:"id"`
	Email      string         `json:"email,omitempty"`
	Attributes map[string]any `json:"attributes,omitempty"`
	MayAct     []MayAct       `json:"may_act,omitempty"`
	CreatedAt  time.Time      `json:"created_at"`
	// Devices is the number of enrolled devices, filled by UserByHint.
	Devices int64 `json:"-"`
}

// MayAct limits which agents may act for a user, and how far.
type MayAct struct {
	ClientID  string   `json:"client_id"`
	Scope     string   `json:"scope,omitempty"`
	MaxAmount *float64 `json:"max_amount,omitempty"`
}

// Directory keys (clients, users) share the {dir} hash tag: the few
// scripts over them (an email index, a user lookup by hint) stay in one
// Redis Cluster slot.
func (db *DB) dir() string                { return db.prefix + "{dir}:" }
func (db *DB) clientKey(id string) string { return db.dir() + "client:" + id }
func (db *DB) clientsKey() string         { return db.dir() + "clients" }
func (db *DB) userKey(id string) string   { return db.dir() + "user:" + id }
func (db *DB) usersKey() string           { return db.dir() + "users" }
func (db *DB) emailKey(e string) string   { return db.dir() + "user-email:" + e }

// scriptPutClient is lua/put_client.lua; the names are its KEYS and ARGV as
// passed below, in order.
var scriptPutClient = newAudited("put_client", []string{"client", "clients", "channel"}, []string{"client_json", "id", "mode"})

// CreateClient stores a new client and audits it in one step; ErrExists
// when the id is taken.
func (db *DB) CreateClient(ctx context.Context, c *Client, event Event) error {
	return db.putClient(ctx, c, "create", event)
}

// PutClient replaces an existing client (admin PATCH), audited.
func (db *DB) PutClient(ctx context.Context, c *Client, event Event) error {
	return db.putClient(ctx, c, "put", event)
}

func (db *DB) putClient(ctx context.Context, c *Client, mode string, event Event) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	res, err := db.runAudited(ctx, scriptPutClient, dirShard, []string{db.clientKey(c.ID), db.clientsKey(), db.ClientsChannel()},
		[]any{b, c.ID, mode}, []Event{event})
	if err != nil {
		return err
	}
	switch res[0] {
	case "exists":
		return ErrExists
	case "missing":
		return ErrNotFound
	}
	return nil
}

// Client returns one client.
func (db *DB) Client(ctx context.Context, id string) (*Client, error) {
	return decodeClient(db.rdb.Get(ctx, db.clientKey(id)).Bytes())
}

func decodeClient(b []byte, err error) (*Client, error) {
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	var c Client
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// Clients lists every client, sorted by id.
func (db *DB) Clients(ctx context.Context) ([]*Client, error) {
	ids, err := db.rdb.SMembers(ctx, db.clientsKey()).Result()
	if err != nil {
		return nil, err
	}
	sort.Strings(ids)
	out := make([]*Client, 0, len(ids))
	for _, id := range ids {
		c, err := db.Client(ctx, id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// scriptDeleteClient is lua/delete_client.lua; the names are its KEYS and ARGV as
// passed below, in order.
var scriptDeleteClient = newAudited("delete_client", []string{"client", "clients", "channel"}, []string{"id"})

// DeleteClient removes a client, audited.
func (db *DB) DeleteClient(ctx context.Context, id string, event Event) error {
	res, err := db.runAudited(ctx, scriptDeleteClient, dirShard, []string{db.clientKey(id), db.clientsKey(), db.ClientsChannel()}, []any{id}, []Event{event})
	if err != nil {
		return err
	}
	if res[0] != "ok" {
		return ErrNotFound
	}
	return nil
}

// CreateUser stores a new user and its email index, audited, in one
// step.
func (db *DB) CreateUser(ctx context.Context, u *User, event Event) error {
	b, err := json.Marshal(u)
	if err != nil {
		return err
	}
	res, err := db.runAudited(ctx, scriptCreateUser, dirShard, []string{db.userKey(u.ID), db.emailKey(u.Email), db.usersKey()},
		[]any{b, u.ID, u.Email}, []Event{event})
	if err != nil {
		return err
	}
	if res[0] != "ok" {
		return ErrExists
	}
	return nil
}

// PutUser replaces a user, moving its email index when the email changed,
// audited.
func (db *DB) PutUser(ctx context.Context, old, u *User, event Event) error {
	b, err := json.Marshal(u)
	if err != nil {
		return err
	}
	res, err := db.runAudited(ctx, scriptPutUser, dirShard, []string{db.userKey(u.ID), db.emailKey(old.Email), db.emailKey(u.Email)},
		[]any{b, u.ID, old.Email, u.Email}, []Event{event})
	if err != nil {
		return err
	}
	switch res[0] {
	case "ok":
		return nil
	case "missing":
		return ErrNotFound
	default:
		return ErrExists
	}
}

// User returns one user by id.
func (db *DB) User(ctx context.Context, id string) (*User, error) {
	return decodeUser(db.rdb.Get(ctx, db.userKey(id)).Bytes())
}

// UserByHint resolves a login_hint that is a user id or an email, in one
// round trip.
func (db *DB) UserByHint(ctx context.Context, hint string) (*User, error) {
	res, err := scriptUserByHint.Run(ctx, db.rdb, []string{db.userKey(hint), db.emailKey(hint)}, db.userKey(""), db.userDevicesKey("")).Slice()
	if err != nil {
		return nil, err
	}
	b, _ := res[0].(string)
	if b == "" {
		return nil, ErrNotFound
	}
	u, err := decodeUser([]byte(b), nil)
	if err == nil {
		u.Devices, _ = res[1].(int64)
	}
	return u, err
}

func decodeUser(b []byte, err error) (*User, error) {
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	var u User
	if err := json.Unmarshal(b, &u); err != nil {
		return nil, err
	}
	return &u, nil
}

// Users lists every user id, sorted.
func (db *DB) Users(ctx context.Context) ([]*User, error) {
	ids, err := db.rdb.SMembers(ctx, db.usersKey()).Result()
	if err != nil {
		return nil, err
	}
	sort.Strings(ids)
	out := make([]*User, 0, len(ids))
	for _, id := range ids {
		u, err := db.User(ctx, id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, nil
}

// DeleteUser removes a user and its email index, audited.
func (db *DB) DeleteUser(ctx context.Context, u *User, event Event) error {
	res, err := db.runAudited(ctx, scriptDeleteUser, dirShard, []string{db.userKey(u.ID), db.emailKey(u.Email), db.usersKey()},
		[]any{u.ID}, []Event{event})
	if err != nil {
		return err
	}
	if res[0] != "ok" {
		return ErrNotFound
	}
	return nil
}

// scriptCreateUser is lua/create_user.lua; the names are its KEYS and ARGV as
// passed below, in order.
var scriptCreateUser = newAudited("create_user", []string{"user", "email_index", "users"}, []string{"user_json", "id", "email"})

// scriptPutUser is lua/put_user.lua; the names are its KEYS and ARGV as
// passed below, in order.
var scriptPutUser = newAudited("put_user", []string{"user", "old_email", "new_email"}, []string{"user_json", "id", "old_email", "new_email"})

// scriptDeleteUser is lua/delete_user.lua; the names are its KEYS and ARGV as
// passed below, in order.
var scriptDeleteUser = newAudited("delete_user", []string{"user", "email_index", "users"}, []string{"id"})

// scriptUserByHint is lua/user_by_hint.lua; the names are its KEYS and ARGV as
// passed below, in order.
var scriptUserByHint = newLua("user_by_hint", []string{"user_by_id", "user_by_email"}, []string{"user_prefix", "devices_prefix"})

// ClientsChannel is the pub/sub channel on which every change of a client
// is announced (its id), so that nodes drop their cached copy.
func (db *DB) ClientsChannel() string { return db.dir() + "clients-changed" }

// WatchClients calls changed with the id of every client change
// announced, and with "" whenever announcements may have been missed (on
// every (re)subscription), until ctx ends.
func (db *DB) WatchClients(ctx context.Context, changed func(id string)) {
	ps := db.rdb.Subscribe(ctx, db.ClientsChannel())
	defer ps.Close()
	for {
		m, err := ps.Receive(ctx)
		if ctx.Err() != nil {
			return
		}
		switch msg := m.(type) {
		case *redis.Message:
			changed(msg.Payload)
		default: // a (re)subscription or an error: start afresh
			changed("")
			if err != nil {
				time.Sleep(100 * time.Millisecond)
			}
		}
	}
}
