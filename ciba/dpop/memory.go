package dpop

import (
	"context"
	"sync"
	"time"
)

// MemoryGuard is a ReplayGuard kept in this process: enough for a
// resource server running as one process. Servers behind a load balancer
// must share one guard (ciba/store.DB), or a proof could be replayed to
// another instance.
type MemoryGuard struct {
	Now func() time.Time

	mu      sync.Mutex
	seen    map[string]time.Time
	inserts int
}

// UseOnce implements ReplayGuard.
func (g *MemoryGuard) UseOnce(_ context.Context, kind, id string, until time.Time) (bool, error) {
	now := time.Now
	if g.Now != nil {
		now = g.Now
	}
	t := now()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.seen == nil {
		g.seen = map[string]time.Time{}
	}
	// Sweep expired entries every 1024 inserts, so the map stays bounded
	// by the proofs of about one window.
	if g.inserts++; g.inserts%1024 == 0 {
		for k, exp := range g.seen {
			if !exp.After(t) {
				delete(g.seen, k)
			}
		}
	}
	key := kind + "\x00" + id
	if exp, ok := g.seen[key]; ok && exp.After(t) {
		return false, nil
	}
	g.seen[key] = until
	return true, nil
}
