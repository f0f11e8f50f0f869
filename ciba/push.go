package ciba

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/countersign/countersign/ciba/rar"
	"github.com/countersign/countersign/ciba/store"
	"github.com/countersign/countersign/notify"
)

// vapidName is the store singleton holding the VAPID key pair.
const vapidName = "vapid-keys"

// LoadVAPID returns the shared VAPID keys, creating them on first start.
func LoadVAPID(ctx context.Context, db *store.DB) (notify.VAPIDKeys, error) {
	k, err := notify.GenerateVAPIDKeys()
	if err != nil {
		return notify.VAPIDKeys{}, err
	}
	init, _ := json.Marshal(k)
	b, err := db.LoadOrInit(ctx, vapidName, init)
	if err != nil {
		return notify.VAPIDKeys{}, err
	}
	var out notify.VAPIDKeys
	return out, json.Unmarshal(b, &out)
}

// DevicePusher sends approval requests to a user's devices by Web Push.
// The outbox worker calls it for the device entry that the request's own
// script wrote, so a push survives the node that took the request: another
// node takes the entry over. A failed push leaves the request pending and
// visible in GET /device/requests.
type DevicePusher struct {
	Service *Service
	Pusher  *notify.Pusher
	// Wait, when set, receives the completion of every push (tests).
	Wait func()
}

// PushPayload is the Web Push payload of an approval request (docs/api.md).
type PushPayload struct {
	Type           string   `json:"type"`
	ID             string   `json:"id"`
	BindingMessage string   `json:"binding_message,omitempty"`
	Agent          Agent    `json:"agent"`
	Summary        string   `json:"summary"`
	Risk           RiskView `json:"risk"`
	ExpiresAt      string   `json:"expires_at"`
}

// devicePushParallel bounds the pushes of one request in flight at once.
const devicePushParallel = 4

// PushDevices implements DeviceNotifier: one attempt to each device in
// only (every device of the user when nil). It returns the devices worth
// another attempt and the earliest their push services allow it.
func (p *DevicePusher) PushDevices(ctx context.Context, r *store.Request, only []string) ([]string, time.Duration) {
	s := p.Service
	devs, err := s.db.Devices(ctx, r.UserID)
	if err != nil {
		s.Log.Error("device lookup for push failed", "request", r.ID, "err", err)
		return only, 0
	}
	v := s.view(ctx, &store.RequestState{Request: *r, State: store.Pending})
	payload, _ := json.Marshal(PushPayload{Type: "approval_request", ID: r.ID, BindingMessage: r.BindingMessage,
		Agent: v.Agent, Summary: Summary(r), Risk: v.Risk, ExpiresAt: v.ExpiresAt})
	// RFC 8030 §5.4: one topic per user, so a newer approval request
	// replaces an older undelivered one.
	msg := notify.Message{Payload: payload, TTL: max(r.ExpiresAt.Sub(s.Now()), 0), Urgency: "high", Topic: topicOf(r.UserID)}
	var (
		mu    sync.Mutex
		again []string
		wait  time.Duration
		wg    sync.WaitGroup
	)
	sem := make(chan struct{}, devicePushParallel)
	for _, dev := range devs {
		var sub notify.Subscription
		if len(dev.PushSubscription) == 0 || (only != nil && !slices.Contains(only, dev.ID)) ||
			json.Unmarshal(dev.PushSubscription, &sub) != nil {
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if p.Wait != nil {
				defer p.Wait()
			}
			if res := p.send(ctx, dev, sub, msg, r); res.Outcome == notify.Retry {
				mu.Lock()
				again, wait = append(again, dev.ID), max(wait, res.RetryAfter)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return again, wait
}

// send makes one push attempt and acts on a final outcome.
func (p *DevicePusher) send(ctx context.Context, dev *store.Device, sub notify.Subscription, msg notify.Message, r *store.Request) notify.Result {
	s := p.Service
	res := p.Pusher.Send(ctx, sub, msg)
	switch res.Outcome {
	case notify.Gone:
		// RFC 8030 §7.3: 404/410 means the subscription is gone.
		if err := s.db.SetPushSubscription(ctx, dev.ID, nil); err != nil {
			s.Log.Error("removing a gone subscription failed", "device", dev.ID, "err", err)
		}
		s.Log.Info("push subscription gone; removed", "device", dev.ID)
	case notify.Delivered, notify.Retry:
	default:
		s.Log.Warn("push failed", "device", dev.ID, "request", r.ID, "status", res.Status, "err", res.Err)
	}
	return res
}

// topicOf is at most 32 characters of the URL-safe base64 alphabet.
func topicOf(user string) string { return "req-" + BMHash("topic:" + user)[:28] }

// Summary is a one-line description of what an agent asks.
func Summary(r *store.Request) string {
	var ds []rar.Detail
	_ = json.Unmarshal(r.AuthorizationDetails, &ds)
	if len(ds) == 0 {
		return "Sign in as you (" + r.Scope + ")"
	}
	parts := make([]string, 0, len(ds))
	for _, d := range ds {
		typ, _ := d["type"].(string)
		act, _ := d["action"].(string)
		switch typ {
		case rar.TypePaymentInitiation:
			amt := rar.Amount([]rar.Detail{d})
			cur, _ := d["currency"].(string)
			to := ""
			if c, ok := d["creditor"].(map[string]any); ok {
				if n, ok := c["name"].(string); ok {
					to = " to " + n
				}
			}
			parts = append(parts, fmt.Sprintf("Pay %.2f %s%s", amt, cur, to))
		case rar.TypeMCPToolCall:
			tool, _ := d["tool"].(string)
			srv, _ := d["server"].(map[string]any)
			name, _ := srv["name"].(string)
			parts = append(parts, "Run "+tool+" on "+name)
		case rar.TypeIntentMandate:
			intent, _ := d["intent"].(string)
			parts = append(parts, "Approve a mandate: "+intent)
		case TypeAuthZENEvaluation:
			a, _ := d["action"].(map[string]any)
			r, _ := d["resource"].(map[string]any)
			name, _ := a["name"].(string)
			rt, _ := r["type"].(string)
			id, _ := r["id"].(string)
			parts = append(parts, strings.TrimSpace(name+" "+rt+" "+id))
		default:
			res, _ := d["resource"].(string)
			parts = append(parts, strings.TrimSpace(act+" "+res))
		}
	}
	return strings.Join(parts, "; ")
}
