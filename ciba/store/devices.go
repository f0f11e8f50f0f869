package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// Device is a user's enrolled phone: its ES256 public key and its Web
// Push subscription (empty when the browser could not subscribe).
type Device struct {
	ID               string          `json:"id"`
	UserID           string          `json:"user_id"`
	Name             string          `json:"name"`
	PublicKey        json.RawMessage `json:"public_key"`
	PushSubscription json.RawMessage `json:"push_subscription,omitempty"`
	CreatedAt        time.Time       `json:"created_at"`
}

func (db *DB) deviceKey(id string) string       { return db.dir() + "device:" + id }
func (db *DB) userDevicesKey(u string) string   { return db.dir() + "devices:" + u }
func (db *DB) enrollKey(codeHash string) string { return db.dir() + "enroll:" + codeHash }

func hashCode(code string) string {
	sum := sha256.Sum256([]byte(code))
	return hex.EncodeToString(sum[:])
}

// CreateEnrollment stores a one-time enrollment code for a user, hashed,
// until it expires.
func (db *DB) CreateEnrollment(ctx context.Context, user, code string, until time.Time) error {
	return db.rdb.Set(ctx, db.enrollKey(hashCode(code)), user, until.Sub(db.Now())).Err()
}

// KEYS 1 enroll code, 2 device, 3 user devices, 4 user, 5-6 audit.
// ARGV 1 device json (user set), 2 device id, 3 the user the code named
// when read, 4.. audit. The code is consumed, the device stored and the
// enrollment audited in one step: a code enrolls one device, once.
var scriptEnroll = redis.NewScript(luaAudit + `
local stale = audit_stale(5, 4)
if stale then return {'stale', stale} end
local user = redis.call('GET', KEYS[1])
if user ~= ARGV[3] or redis.call('EXISTS', KEYS[4]) == 0 then return {'bad_code'} end
audit_write(5, 4)
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[2])
return {'ok'}
`)

// ErrBadCode is returned for an unknown, used or expired enrollment code.
var ErrBadCode = errors.New("store: enrollment code unknown, used or expired")

// Enroll consumes an enrollment code and stores the device for its user,
// writing event (its User and DeviceID filled in) to the directory's audit
// chain in the same step. It returns the device with its user id set.
func (db *DB) Enroll(ctx context.Context, code string, d Device, event Event) (*Device, error) {
	codeKey := db.enrollKey(hashCode(code))
	user, err := db.rdb.Get(ctx, codeKey).Result()
	if errors.Is(err, redis.Nil) {
		return nil, ErrBadCode
	}
	if err != nil {
		return nil, err
	}
	d.UserID = user
	event.User, event.DeviceID = user, d.ID
	b, err := json.Marshal(d)
	if err != nil {
		return nil, err
	}
	res, err := db.runAudited(ctx, scriptEnroll, dirShard,
		[]string{codeKey, db.deviceKey(d.ID), db.userDevicesKey(user), db.userKey(user)}, []any{b, d.ID, user}, []Event{event})
	if err != nil {
		return nil, err
	}
	if res[0] != "ok" {
		return nil, ErrBadCode
	}
	return &d, nil
}

// Device returns one device.
func (db *DB) Device(ctx context.Context, id string) (*Device, error) {
	b, err := db.rdb.Get(ctx, db.deviceKey(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	var d Device
	return &d, json.Unmarshal(b, &d)
}

// Devices returns a user's devices.
func (db *DB) Devices(ctx context.Context, user string) ([]*Device, error) {
	ids, err := db.rdb.SMembers(ctx, db.userDevicesKey(user)).Result()
	if err != nil || len(ids) == 0 {
		return nil, err
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = db.deviceKey(id)
	}
	vals, err := db.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, err
	}
	out := make([]*Device, 0, len(vals))
	for _, v := range vals {
		s, ok := v.(string)
		if !ok {
			continue
		}
		var d Device
		if json.Unmarshal([]byte(s), &d) == nil {
			out = append(out, &d)
		}
	}
	return out, nil
}

// SetPushSubscription replaces (or with nil removes) a device's push
// subscription.
func (db *DB) SetPushSubscription(ctx context.Context, id string, sub json.RawMessage) error {
	d, err := db.Device(ctx, id)
	if err != nil {
		return err
	}
	d.PushSubscription = sub
	b, _ := json.Marshal(d)
	return db.rdb.SetXX(ctx, db.deviceKey(id), b, 0).Err()
}

// KEYS 1 device, 2 user devices, 3-4 audit. ARGV 1 device id, 2.. audit.
var scriptRemoveDevice = redis.NewScript(luaAudit + `
local stale = audit_stale(3, 2)
if stale then return {'stale', stale} end
if redis.call('EXISTS', KEYS[1]) == 0 then return {'missing'} end
audit_write(3, 2)
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
return {'ok'}
`)

// RemoveDevice deletes a device and audits it in one step.
func (db *DB) RemoveDevice(ctx context.Context, d *Device, event Event) error {
	res, err := db.runAudited(ctx, scriptRemoveDevice, dirShard, []string{db.deviceKey(d.ID), db.userDevicesKey(d.UserID)}, []any{d.ID}, []Event{event})
	if err != nil {
		return err
	}
	if res[0] != "ok" {
		return ErrNotFound
	}
	return nil
}
