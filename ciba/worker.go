package ciba

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/countersign/countersign/ciba/ratelog"
	"github.com/countersign/countersign/ciba/store"
	"github.com/countersign/countersign/notify"
)

// Worker delivers the outbox: ping and push callbacks to agents (CIBA
// Core §10.2, §10.3) and Web Push of pending requests to the user's
// devices, and expires pending requests on time. Every node
// runs one; they share the work through the Redis consumer group, and a
// node that dies mid-delivery has its notifications taken over after
// ClaimIdle (XAUTOCLAIM). Delivery is at least once.
type Worker struct {
	Service  *Service
	Callback *notify.Callback
	// PrivateCallback serves clients an administrator registered with
	// allow_private_notification_endpoint.
	PrivateCallback *notify.Callback
	Consumer        string // unique per node
	// ClaimIdle is how long a notification may stay with a silent
	// consumer before another takes it over (default 30 s).
	ClaimIdle time.Duration
	// Parallel bounds concurrent deliveries (default 64).
	Parallel int
	wg       sync.WaitGroup

	mu        sync.Mutex
	delivered func(m store.OutboxMsg, r notify.Result)
	sleepFn   func(ctx context.Context, d time.Duration) error

	// While Redis is down every loop fails on every turn: one line at
	// once, then one per interval with a count, then "recovered".
	readFail, claimFail, sweepFail, storeFail *ratelog.Failure
}

// Hooks sets, while the worker runs, who is told about every finished
// agent notification (metrics, tests; device pushes report through
// DevicePusher.Wait) and how it waits between retries of either (tests
// shorten it); nil keeps the default.
func (w *Worker) Hooks(delivered func(m store.OutboxMsg, r notify.Result), sleep func(ctx context.Context, d time.Duration) error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.delivered, w.sleepFn = delivered, sleep
}

// Run works until ctx ends, then waits for deliveries in flight.
func (w *Worker) Run(ctx context.Context) error {
	db := w.Service.db
	if w.ClaimIdle == 0 {
		w.ClaimIdle = 30 * time.Second
	}
	if w.Parallel == 0 {
		w.Parallel = 64
	}
	log := w.Service.Log
	w.readFail = ratelog.New(log, slog.LevelError, "outbox read failed")
	w.claimFail = ratelog.New(log, slog.LevelError, "outbox reclaim failed")
	w.sweepFail = ratelog.New(log, slog.LevelError, "expiry sweep failed")
	w.storeFail = ratelog.New(log, slog.LevelError, "outbox: store unavailable during delivery")
	// A Redis outage while the node starts must not leave it without a
	// worker for good: retry until the groups exist.
	for {
		err := db.EnsureOutboxGroups(ctx)
		if err == nil {
			w.readFail.OK()
			break
		}
		if ctx.Err() != nil {
			return err
		}
		w.readFail.Fail(err)
		w.sleep(ctx, time.Second)
	}
	sem := make(chan struct{}, w.Parallel)
	start := func(m store.OutboxMsg) {
		sem <- struct{}{}
		w.wg.Add(1)
		go func() {
			defer func() { <-sem; w.wg.Done() }()
			w.deliver(ctx, m)
		}()
	}
	w.wg.Add(2)
	go func() { defer w.wg.Done(); w.reclaim(ctx, start) }()
	go func() { defer w.wg.Done(); w.sweep(ctx) }()
	for ctx.Err() == nil {
		msgs, err := db.ReadOutbox(ctx, w.Consumer, 64, time.Second)
		if err != nil {
			if ctx.Err() == nil {
				w.readFail.Fail(err)
				w.sleep(ctx, time.Second)
				if strings.HasPrefix(err.Error(), "NOGROUP") {
					// The stream or its group is gone (a flushed Redis): recreate.
					_ = db.EnsureOutboxGroups(ctx)
				}
			}
			continue
		}
		w.readFail.OK()
		for _, m := range msgs {
			start(m)
		}
	}
	w.wg.Wait()
	return nil
}

func (w *Worker) sleep(ctx context.Context, d time.Duration) error {
	w.mu.Lock()
	fn := w.sleepFn
	w.mu.Unlock()
	if fn != nil {
		return fn(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// reclaim takes over notifications of dead consumers.
func (w *Worker) reclaim(ctx context.Context, start func(store.OutboxMsg)) {
	every := max(w.ClaimIdle/3, 100*time.Millisecond)
	for ctx.Err() == nil {
		msgs, err := w.Service.db.ClaimStale(ctx, w.Consumer, w.ClaimIdle, 64)
		switch {
		case err != nil && ctx.Err() == nil:
			w.claimFail.Fail(err)
		case err == nil:
			w.claimFail.OK()
		}
		for _, m := range msgs {
			w.Service.Log.Info("took over a notification of another node", "request", m.Outbox.RequestID)
			start(m)
		}
		w.sleep(ctx, every)
	}
}

// deliver sends one notification, retrying timeouts, connection errors
// and 5xx with backoff until the request expires; 3xx and 4xx are final.
func (w *Worker) deliver(ctx context.Context, m store.OutboxMsg) {
	s := w.Service
	rs, err := s.db.RequestByID(ctx, m.Outbox.RequestID)
	if errors.Is(err, store.ErrNotFound) {
		_ = s.db.Done(ctx, m)
		return
	}
	if err != nil {
		w.storeFail.Fail(err, "request", m.Outbox.RequestID)
		return // stays pending; reclaimed later
	}
	r := &rs.Request
	if m.Outbox.Kind == kindDevice {
		w.pushDevices(ctx, m, rs)
		return
	}
	cl, err := s.client(ctx, r.ClientID) // the node's cache, as at /token
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		// Not a missing client, an unreachable store: keep the
		// notification for a later attempt rather than drop it.
		w.storeFail.Fail(err, "request", r.ID)
		return
	}
	if err != nil || cl.NotificationEndpoint == "" {
		s.Log.Warn("outbox: client gone or has no notification endpoint; dropped", "request", r.ID)
		_ = s.db.Done(ctx, m)
		return
	}
	body := m.Outbox.Body
	if m.Outbox.Kind == kindExpired {
		body = expiredBody(r)
	}
	var res notify.Result
	for attempt := 0; ; attempt++ {
		cb := w.Callback
		if cl.AllowPrivateNotifications && w.PrivateCallback != nil {
			cb = w.PrivateCallback
		}
		res = cb.Post(ctx, cl.NotificationEndpoint, r.NotificationToken, body)
		if res.Outcome != notify.Retry {
			break
		}
		// Until the request expires: past it the agent gets expired_token
		// from /token anyway and the notification has no use.
		// A backoff that would pass the expiry is cut short: the last try
		// comes a second before it, not never.
		wait := max(notify.Backoff(attempt), res.RetryAfter)
		left := r.ExpiresAt.Sub(s.Now()) - time.Second
		if left <= 0 || ctx.Err() != nil {
			break
		}
		wait = min(wait, left)
		_ = s.db.Touch(ctx, w.Consumer, m)
		if w.sleep(ctx, wait) != nil {
			return // shutting down: another node takes it over
		}
	}
	if res.Outcome != notify.Delivered {
		s.Log.Warn("notification not delivered", "request", r.ID, "client", r.ClientID, "outcome", res.Outcome.String(),
			"status", res.Status)
	}
	if err := s.db.Done(ctx, m); err != nil {
		w.storeFail.Fail(err, "request", r.ID, "step", "ack")
	} else {
		w.storeFail.OK()
	}
	w.mu.Lock()
	done := w.delivered
	w.mu.Unlock()
	if done != nil {
		done(m, res)
	}
}

// Outbox kinds besides the delivery modes: the notification of a request
// that expired pending, and the Web Push of a pending request to the
// user's devices.
const (
	kindExpired = "expired"
	kindDevice  = "device"
)

// pushDevices sends a pending request to its user's devices, retrying
// the devices whose push service failed for the moment until the request
// is decided or expires. A node that dies meanwhile leaves the entry to
// another (ClaimIdle).
func (w *Worker) pushDevices(ctx context.Context, m store.OutboxMsg, rs *store.RequestState) {
	s := w.Service
	var only []string
	for attempt := 0; s.Devices != nil && rs.State == store.Pending; attempt++ {
		again, wait := s.Devices.PushDevices(ctx, &rs.Request, only)
		if len(again) == 0 {
			break
		}
		// Until the request expires: past it nobody can approve it.
		wait = max(notify.Backoff(attempt), wait)
		if s.Now().Add(wait).After(rs.Request.ExpiresAt) || ctx.Err() != nil {
			break
		}
		_ = s.db.Touch(ctx, w.Consumer, m)
		if w.sleep(ctx, wait) != nil {
			return // shutting down: another node takes it over
		}
		cur, err := s.db.RequestByID(ctx, rs.Request.ID)
		if err != nil {
			break // gone, or Redis failing: the phone still lists it
		}
		rs, only = cur, again
	}
	if err := s.db.Done(ctx, m); err != nil {
		s.Log.Error("outbox ack failed", "request", rs.Request.ID, "err", err)
	}
}

func expiredBody(r *store.Request) []byte {
	if DeliveryMode(r.DeliveryMode) == ModePush {
		b, _ := json.Marshal(map[string]string{"auth_req_id": r.ID, "error": "expired_token",
			"error_description": "the request expired before the user decided"})
		return b
	}
	b, _ := json.Marshal(map[string]string{"auth_req_id": r.ID})
	return b
}

// sweep expires pending requests whose time has passed: state, audit and
// the agent's notification in one step per request.
func (w *Worker) sweep(ctx context.Context) {
	s := w.Service
	for ctx.Err() == nil {
		ok := true
		for shard := 0; shard < store.Shards && ctx.Err() == nil; shard++ {
			ids, err := s.db.DueExpiries(ctx, shard, 100)
			if err != nil {
				ok = false
				if ctx.Err() == nil {
					w.sweepFail.Fail(err, "shard", shard)
				}
				continue
			}
			for _, id := range ids {
				if err := s.expire(ctx, id); err != nil && ctx.Err() == nil {
					ok = false
					w.sweepFail.Fail(err, "request", id)
				}
			}
		}
		if ok && ctx.Err() == nil {
			w.sweepFail.OK()
		}
		w.sleep(ctx, time.Second)
	}
}

func (s *Service) expire(ctx context.Context, id string) error {
	rs, err := s.db.RequestByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return s.db.ForgetExpiry(ctx, id)
	}
	if err != nil {
		return err
	}
	r := rs.Request
	var ob *store.Outbox
	if m := DeliveryMode(r.DeliveryMode); m == ModePing || m == ModePush {
		ob = &store.Outbox{RequestID: id, Kind: kindExpired}
	}
	_, err = s.db.Expire(ctx, &r, ob, []store.Event{{At: s.Now(), Type: "request.expired", RequestID: id,
		User: r.UserID, Agent: r.ClientID, Actors: []string{r.ClientID}, Path: r.Path}})
	return err
}
