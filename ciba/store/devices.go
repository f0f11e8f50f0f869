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

// scriptEnroll is lua/enroll.lua; the names are its KEYS and ARGV as
// passed below, in order.
var scriptEnroll = newAudited("enroll", []string{"code", "device", "user_devices", "user"}, []string{"device_json", "device_id", "user"})

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

// scriptRemoveDevice is lua/remove_device.lua; the names are its KEYS and ARGV as
// passed below, in order.
var scriptRemoveDevice = newAudited("remove_device", []string{"device", "user_devices"}, []string{"device_id"})

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
