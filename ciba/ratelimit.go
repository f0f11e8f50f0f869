package ciba

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/countersign/countersign/ciba/oauth"
	"github.com/countersign/countersign/ciba/store"
)

// RateLimits are the request rate limits shared by every node through
// Redis: requests per Window from one IP address and for one client id.
// 0 disables a limit.
//
// With Sync 0 every request is counted in Redis before it is served (one
// pipelined round trip). With Sync > 0 a node counts in memory and adds
// its counts to the shared ones every Sync, learning the other nodes'
// totals in the same round trip: no round trip on the request path, and
// a limit shared by N nodes is passed by at most what they serve in one
// Sync period.
type RateLimits struct {
	PerIP     int
	PerClient int
	Window    time.Duration
	Sync      time.Duration
}

// Enabled reports whether any limit is on.
func (l RateLimits) Enabled() bool { return l.Window > 0 && (l.PerIP > 0 || l.PerClient > 0) }

func (l RateLimits) keys(ip, client string) []store.RateKey {
	var keys []store.RateKey
	if l.PerIP > 0 {
		keys = append(keys, store.RateKey{Kind: "ip", ID: ip})
	}
	if l.PerClient > 0 && client != "" {
		keys = append(keys, store.RateKey{Kind: "client", ID: client})
	}
	return keys
}

func (l RateLimits) limit(k store.RateKey) int64 {
	if k.Kind == "client" {
		return int64(l.PerClient)
	}
	return int64(l.PerIP)
}

// Admit counts one request from ip naming client ("" for none) and
// refuses it with 429 slow_down and Retry-After past either limit. The
// time it returns is the request's window, for Refund.
func (s *Service) Admit(ctx context.Context, l RateLimits, ip, client string) (time.Time, error) {
	at := s.db.Now()
	keys := l.keys(ip, client)
	if len(keys) == 0 {
		return at, nil
	}
	if l.Sync > 0 {
		return at, s.rates.admit(l, keys, at)
	}
	ns := make([]int64, len(keys))
	for i := range ns {
		ns[i] = 1
	}
	counts, err := s.db.AddHits(ctx, l.Window, at, keys, ns)
	if err != nil {
		return at, err
	}
	for i, k := range keys {
		if counts[i] > l.limit(k) {
			return at, tooMany(k.Kind, left(l.Window, at))
		}
	}
	return at, nil
}

// Refund takes back a request counted for client at at: someone who named
// the client without its credentials must not spend its budget.
func (s *Service) Refund(ctx context.Context, l RateLimits, client string, at time.Time) {
	if l.PerClient <= 0 || client == "" {
		return
	}
	k := store.RateKey{Kind: "client", ID: client}
	if l.Sync > 0 {
		s.rates.add(rateSlot{k, at.UnixNano() / int64(l.Window)}, -1)
		return
	}
	_, _ = s.db.AddHits(context.WithoutCancel(ctx), l.Window, at, []store.RateKey{k}, []int64{-1})
}

// SyncRates adds this node's counts to the shared ones every l.Sync
// until ctx ends (with Sync 0 there is nothing to sync).
func (s *Service) SyncRates(ctx context.Context, l RateLimits) {
	if !l.Enabled() || l.Sync <= 0 {
		return
	}
	t := time.NewTicker(l.Sync)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.rates.flush(ctx, s.db, l.Window, s.db.Now())
		}
	}
}

func left(window time.Duration, at time.Time) time.Duration {
	idx := at.UnixNano() / int64(window)
	return time.Duration((idx+1)*int64(window) - at.UnixNano())
}

func tooMany(kind string, left time.Duration) error {
	secs := int((left + time.Second - 1) / time.Second)
	who := "this address"
	if kind == "client" {
		who = "this client"
	}
	// 429 slow_down with Retry-After in seconds (RFC 9110 §10.2.3).
	return oauth.New(oauth.SlowDown, "too many requests from %s; retry later", who).WithStatus(http.StatusTooManyRequests).
		WithHeader("Retry-After", strconv.Itoa(max(secs, 1)))
}

// rateSlot is one key in one window.
type rateSlot struct {
	key store.RateKey
	idx int64
}

// rateCounts is a node's in-memory side of the rate limits: what it
// counted since its last sync, and the shared totals that sync returned.
type rateCounts struct {
	mu     sync.Mutex
	local  map[rateSlot]int64
	shared map[rateSlot]int64
}

func (r *rateCounts) admit(l RateLimits, keys []store.RateKey, at time.Time) error {
	idx := at.UnixNano() / int64(l.Window)
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range keys {
		sl := rateSlot{k, idx}
		if r.shared[sl]+r.local[sl]+1 > l.limit(k) {
			return tooMany(k.Kind, left(l.Window, at))
		}
	}
	if r.local == nil {
		r.local = map[rateSlot]int64{}
	}
	for _, k := range keys {
		r.local[rateSlot{k, idx}]++
	}
	return nil
}

func (r *rateCounts) add(sl rateSlot, n int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.local == nil {
		r.local = map[rateSlot]int64{}
	}
	r.local[sl] += n
}

// flush adds the local counts to Redis and keeps the totals it returns;
// past windows are forgotten. When Redis fails the counts stay local, so
// the limits still hold on this node.
func (r *rateCounts) flush(ctx context.Context, db *store.DB, window time.Duration, now time.Time) {
	r.mu.Lock()
	batch := r.local
	r.local = nil
	cur := now.UnixNano() / int64(window)
	for sl := range r.shared {
		if sl.idx < cur {
			delete(r.shared, sl)
		}
	}
	r.mu.Unlock()
	byWindow := map[int64][]rateSlot{}
	for sl, n := range batch {
		if n != 0 && sl.idx >= cur-1 {
			byWindow[sl.idx] = append(byWindow[sl.idx], sl)
		}
	}
	for idx, slots := range byWindow {
		keys, ns := make([]store.RateKey, len(slots)), make([]int64, len(slots))
		for i, sl := range slots {
			keys[i], ns[i] = sl.key, batch[sl]
		}
		totals, err := db.AddHits(ctx, window, time.Unix(0, idx*int64(window)), keys, ns)
		r.mu.Lock()
		for i, sl := range slots {
			if err != nil {
				if r.local == nil {
					r.local = map[rateSlot]int64{}
				}
				r.local[sl] += ns[i]
				continue
			}
			if r.shared == nil {
				r.shared = map[rateSlot]int64{}
			}
			// The total includes what this node just added; what it
			// counted since is still in local.
			r.shared[sl] = totals[i]
		}
		r.mu.Unlock()
	}
}
