package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/countersign/countersign/ciba/store"
)

// Hit counts per key within a window, starts each window at zero, says
// how long the window has left, and every counter key has a TTL.
func TestRateLimitWindows(t *testing.T) {
	backends(t, func(t *testing.T, db *store.DB, clock *fakeClock) {
		ctx := context.Background()
		ip, cl := store.RateKey{Kind: "ip", ID: "192.0.2.1"}, store.RateKey{Kind: "client", ID: "agent-1"}
		clock.Advance(15 * time.Second) // 12:00:15
		for want := int64(1); want <= 3; want++ {
			counts, left, err := db.Hit(ctx, time.Minute, ip, cl)
			if err != nil || counts[0] != want || counts[1] != want || left != 45*time.Second {
				t.Fatalf("hit %d: %v %v %v", want, counts, left, err)
			}
		}
		if err := db.Unhit(ctx, time.Minute, clock.Now(), cl); err != nil {
			t.Fatal(err)
		}
		counts, _, _ := db.Hit(ctx, time.Minute, ip, cl)
		if counts[0] != 4 || counts[1] != 3 {
			t.Fatalf("after unhit: %v", counts)
		}
		clock.Advance(time.Minute) // the next window
		counts, _, _ = db.Hit(ctx, time.Minute, ip)
		if counts[0] != 1 {
			t.Fatalf("next window: %v", counts)
		}
		keys, err := db.Redis().Keys(ctx, "*rl:*").Result()
		if err != nil || len(keys) == 0 {
			t.Fatalf("keys %v %v", keys, err)
		}
		for _, k := range keys {
			if ttl := db.Redis().PTTL(ctx, k).Val(); ttl <= 0 {
				t.Errorf("%s has no TTL (%v)", k, ttl)
			}
		}
	})
}
