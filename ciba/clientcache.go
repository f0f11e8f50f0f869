package ciba

import (
	"context"
	"sync"
	"time"

	"github.com/countersign/countersign/ciba/store"
)

// ClientCacheTTL bounds how long a node trusts its copy of a client
// record when a change announcement was missed. Changes are announced on
// pub/sub (and dropped locally at once), so in practice a copy lives
// until the client changes.
const ClientCacheTTL = 5 * time.Second

// clientCache keeps client records for the token, revocation and
// introspection endpoints, saving a Redis round trip on each.
type clientCache struct {
	mu      sync.RWMutex
	entries map[string]cachedClient
}

type cachedClient struct {
	c  *store.Client
	at time.Time // wall clock: the service clock may be a test's
}

func (cc *clientCache) get(id string) (*store.Client, bool) {
	cc.mu.RLock()
	defer cc.mu.RUnlock()
	e, ok := cc.entries[id]
	if !ok || time.Since(e.at) > ClientCacheTTL {
		return nil, false
	}
	return e.c, true
}

func (cc *clientCache) put(c *store.Client) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.entries == nil {
		cc.entries = map[string]cachedClient{}
	}
	if len(cc.entries) > 10000 {
		clear(cc.entries)
	}
	cc.entries[c.ID] = cachedClient{c: c, at: time.Now()}
}

func (cc *clientCache) forget(id string) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if id == "" {
		clear(cc.entries)
		return
	}
	delete(cc.entries, id)
}

// client returns a client record, from the cache when fresh. A missing
// client is not cached.
func (s *Service) client(ctx context.Context, id string) (*store.Client, error) {
	if c, ok := s.clients.get(id); ok {
		return c, nil
	}
	c, err := s.db.Client(ctx, id)
	if err != nil {
		return nil, err
	}
	s.clients.put(c)
	return c, nil
}

// ForgetClient drops a cached client record (after an admin change on
// this node; other nodes hear of it through WatchClients).
func (s *Service) ForgetClient(id string) { s.clients.forget(id) }

// WatchClients drops cached client records as their changes are
// announced, until ctx ends.
func (s *Service) WatchClients(ctx context.Context) {
	s.db.WatchClients(ctx, s.clients.forget)
}
