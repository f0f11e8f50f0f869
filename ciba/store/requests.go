package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Request is a backchannel authentication request as stored: everything
// decided at /bc-authorize, immutable afterwards. Its mutable lifecycle
// (state, interval, approval) lives in sibling hash fields.
type Request struct {
	ID                   string          `json:"id"`
	ClientID             string          `json:"client_id"`
	UserID               string          `json:"user_id"`
	Scope                string          `json:"scope"`
	BindingMessage       string          `json:"binding_message,omitempty"`
	AuthorizationDetails json.RawMessage `json:"authorization_details,omitempty"`
	ACRValues            []string        `json:"acr_values,omitempty"`
	DeliveryMode         string          `json:"delivery_mode"`
	NotificationToken    string          `json:"client_notification_token,omitempty"`
	Risk                 json.RawMessage `json:"risk,omitempty"`
	Path                 string          `json:"path"`
	Amount               float64         `json:"amount,omitempty"`
	IP                   string          `json:"ip,omitempty"`
	CreatedAt            time.Time       `json:"created_at"`
	ExpiresAt            time.Time       `json:"expires_at"`
}

// Approval says how a request was approved; it becomes the token's
// approval claim.
type Approval struct {
	By          string    `json:"by"`
	Rules       []string  `json:"rules"`
	DeviceID    string    `json:"device_id,omitempty"`
	DecisionJTI string    `json:"decision_jti,omitempty"`
	DecisionJWT string    `json:"decision_jwt,omitempty"`
	GrantID     string    `json:"grant_id,omitempty"`
	MandateID   string    `json:"mandate_id,omitempty"`
	TokenJTI    string    `json:"token_jti,omitempty"`
	At          time.Time `json:"at"`
}

// State is a request's lifecycle state. Expired is derived from the
// expiry on every read; Redis TTL only collects garbage.
type State string

// Request states.
const (
	Pending  State = "pending"
	Approved State = "approved"
	Denied   State = "denied"
	Expired  State = "expired"
	Redeemed State = "redeemed"
)

// Limits caps device-pending requests to defend users against push
// bombing. Zero means no cap.
type Limits struct {
	PendingPerUser      int
	PendingPerAgentUser int
	PushesPerMinute     int
}

// LimitError is returned by CreateRequest when a cap is reached.
type LimitError struct {
	Which      string
	RetryAfter time.Duration
}

func (e *LimitError) Error() string { return "store: limit reached: " + e.Which }

// Outbox is a notification to deliver after a state change: to an agent,
// or to the user's devices (a pending request's Web Push).
type Outbox struct {
	RequestID string          `json:"request_id"`
	Kind      string          `json:"kind"` // ping | push | expired | device
	Body      json.RawMessage `json:"body,omitempty"`
}

// NewRequest is what CreateRequest stores.
type NewRequest struct {
	Request  Request
	State    State     // Pending, Approved (by policy or context) or Denied (nothing stored but counters and audit)
	Interval int       // seconds between polls
	Approval *Approval // when State is Approved
	Outbox   *Outbox   // when a ping/push client must be told now, or the devices pushed
	Limits   Limits    // when State is Pending
	Grant    *Grant    // when State is Approved
	// Mandate, when set, is re-checked and charged in the same script:
	// ErrMandateSpent (and nothing stored) when it no longer allows it.
	Mandate *MandateCharge
	Events  []Event
}

type reqKeys struct {
	shard int
	keys  []string
}

// keysFor returns the keys every request script takes, in this order:
// 1 request, 2 user pending, 3 agent-user pending, 4 agent-user counters,
// 5 user counters, 6 user pushes (minute), 7 shard expiries, 8 shard
// outbox, 9 the user's grants, 10 the grant record (when grant is set),
// 11 the agent's counters in this shard. The counters are hashes of
// bucket fields (see the key table in doc.go). The agent-wide counter is
// kept per shard so that it moves in the same script as the request;
// reading it sums the shards.
func (db *DB) keysFor(id, client, user, grant string, now time.Time) reqKeys {
	shard := ShardOf(user)
	t := db.tag(shard)
	return reqKeys{shard, []string{
		t + "req:" + id,
		t + "pending:" + user,
		t + "pending-au:" + client + ":" + user,
		db.agentUserCountersKey(shard, client, user),
		db.userCountersKey(shard, user),
		t + "c:p:" + user + ":" + itoa(now.Unix()/60), // not under c:u:, the user hashes' own prefix
		t + "expiries",
		t + "outbox",
		t + "grants:" + user,
		t + "grant:" + grant,
		db.agentCountersKey(shard, client),
	}}
}

// bucket5 and bucketHour number the counters' buckets. Go computes every
// bucket, those the scripts write (bucket_5m, bucket_hour) as those
// queueSignals reads, so writes and reads agree on the windows.
func bucket5(t time.Time) int64    { return t.Unix() / 300 }
func bucketHour(t time.Time) int64 { return t.Unix() / 3600 }

// requestKeys names the keys of keysFor, as the request scripts declare
// them.
var requestKeys = []string{"req", "user_pending", "agent_user_pending", "agent_user_counters",
	"user_counters", "user_pushes", "expiries", "outbox", "user_grants", "grant", "agent_counters"}

// scriptCreate is lua/create_request.lua; the names are its KEYS and ARGV as
// passed below, in order.
var scriptCreate = newAudited("create_request", append(requestKeys[:len(requestKeys):len(requestKeys)], mandateKeyNames...),
	[]string{"rec", "state", "now_ms", "exp_ms", "interval", "approval", "amount",
		"max_user_pending", "max_agent_user_pending", "max_pushes", "id", "outbox_entry", "gc_ttl_ms", "grant_rec", "grant_exp_ms",
		"mandate_id", "mandate_amount", "mandate_uses", "mandate_taken", "bucket_5m", "bucket_hour",
		"client", "user", "grant_id"})

// gcTTL keeps a request around for an hour after its expiry so late polls
// get expired_token rather than invalid_grant.
const gcTTL = time.Hour

// CreateRequest stores a request decided at /bc-authorize, updates the
// counters and indexes and writes its audit events, all in one script.
func (db *DB) CreateRequest(ctx context.Context, n NewRequest) error {
	r := &n.Request
	now := db.Now()
	rec, err := json.Marshal(r)
	if err != nil {
		return err
	}
	approval := []byte("")
	if n.Approval != nil {
		if approval, err = json.Marshal(n.Approval); err != nil {
			return err
		}
	}
	ob, err := outboxArg(n.Outbox)
	if err != nil {
		return err
	}
	grantID, grantRec, grantExp, err := grantArgs(n.Grant)
	if err != nil {
		return err
	}
	charge, err := mandateChargeArgs(n.Mandate, r, now)
	if err != nil {
		return err
	}
	k := db.keysFor(r.ID, r.ClientID, r.UserID, grantID, now)
	mid := ""
	if n.Mandate != nil {
		mid = n.Mandate.ID
	}
	keys := append(k.keys, db.mandateKeys(r.UserID, mid)...)
	res, err := db.runAudited(ctx, scriptCreate, k.shard, keys, append([]any{
		rec, string(n.State), ms(now), ms(r.ExpiresAt), n.Interval, approval, r.Amount,
		n.Limits.PendingPerUser, n.Limits.PendingPerAgentUser, n.Limits.PushesPerMinute,
		r.ID, ob, (r.ExpiresAt.Sub(now) + gcTTL).Milliseconds(), grantRec, grantExp,
	}, append(charge, bucket5(now), bucketHour(now), r.ClientID, r.UserID, grantID)...), n.Events)
	if err != nil {
		return err
	}
	if res[0] == "mandate" {
		return ErrMandateSpent
	}
	if res[0] == "limit" {
		which, _ := res[1].(string)
		retry, _ := res[2].(int64)
		return &LimitError{Which: which, RetryAfter: time.Duration(retry) * time.Millisecond}
	}
	if ob != "" && n.State != Denied {
		db.nudgeOutbox()
	}
	return nil
}

func outboxArg(o *Outbox) (string, error) {
	if o == nil {
		return "", nil
	}
	b, err := json.Marshal(o)
	return string(b), err
}

// agentUserCountersKey is the hash of an agent's counters for one user:
// fields r:<5m>, d:<hour>, s:<hour> and approved.
func (db *DB) agentUserCountersKey(shard int, client, user string) string {
	return db.tag(shard) + "c:au:" + client + ":" + user
}

// userCountersKey is the hash of a user's counters: fields s:<hour>.
func (db *DB) userCountersKey(shard int, user string) string {
	return db.tag(shard) + "c:u:" + user
}

// agentCountersKey is the hash of a shard's share of an agent's
// counters: fields r:<5m>.
func (db *DB) agentCountersKey(shard int, client string) string {
	return db.tag(shard) + "c:a:" + client
}

// PollOutcome is the result of one poll of a request.
type PollOutcome struct {
	Status   PollStatus
	Interval int // the new interval after slow_down
	Request  *Request
	Approval *Approval
	Response []byte // a push-mode token response, when stored
}

// PollStatus is what a poll found; ciba maps every one to its OAuth
// answer in one place.
type PollStatus string

// Poll outcomes, as the poll script answers them.
const (
	PollUnknown     PollStatus = "missing"
	PollWrongClient PollStatus = "wrong_client"
	PollRedeemed    PollStatus = "redeemed"
	PollExpired     PollStatus = "expired"
	PollSlowDown    PollStatus = "slow_down"
	PollPending     PollStatus = "pending"
	PollDenied      PollStatus = "denied"
	PollApproved    PollStatus = "approved"
)

// scriptPoll is lua/poll.lua; the names are its KEYS and ARGV as
// passed below, in order.
var scriptPoll = newLua("poll", []string{"req"}, []string{"client", "now_ms"})

// Poll reads a request for the CIBA grant on behalf of client, enforcing
// the polling interval. An approved request is returned with its record
// and approval but stays approved until Redeem.
func (db *DB) Poll(ctx context.Context, id, client string) (PollOutcome, error) {
	shard, ok := shardOfID(id)
	if !ok {
		return PollOutcome{Status: PollUnknown}, nil
	}
	now := db.Now()
	res, err := scriptPoll.Run(ctx, db.rdb, []string{db.tag(shard) + "req:" + id}, client, ms(now)).Slice()
	if err != nil {
		return PollOutcome{}, err
	}
	st, _ := res[0].(string)
	out := PollOutcome{Status: PollStatus(st)}
	switch out.Status {
	case PollSlowDown:
		out.Interval = int(res[1].(int64))
	case PollApproved:
		out.Request, out.Approval, err = decodeRecApproval(res[1], res[2])
	}
	return out, err
}

func decodeRecApproval(rec, approval any) (*Request, *Approval, error) {
	var r Request
	s, _ := rec.(string)
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		return nil, nil, fmt.Errorf("store: request record: %w", err)
	}
	a, _ := approval.(string)
	if a == "" {
		return &r, nil, nil
	}
	var ap Approval
	if err := json.Unmarshal([]byte(a), &ap); err != nil {
		return nil, nil, fmt.Errorf("store: approval: %w", err)
	}
	return &r, &ap, nil
}

// ErrNotRedeemable is returned by Redeem when the request was redeemed,
// expired or changed since it was polled.
var ErrNotRedeemable = errors.New("store: request not redeemable")

// scriptRedeem is lua/redeem.lua; the names are its KEYS and ARGV as
// passed below, in order.
var scriptRedeem = newAudited("redeem", []string{"req"}, []string{"now_ms"})

// Redeem marks an approved request redeemed: one auth_req_id yields at
// most one token response, ever. The token-issued event is written in the
// same step.
func (db *DB) Redeem(ctx context.Context, r *Request, events []Event) error {
	shard := ShardOf(r.UserID)
	res, err := db.runAudited(ctx, scriptRedeem, shard, []string{db.tag(shard) + "req:" + r.ID}, []any{ms(db.Now())}, events)
	if err != nil {
		return err
	}
	if res[0] != "ok" {
		return ErrNotRedeemable
	}
	return nil
}
