package ciba

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/countersign/countersign/ciba/store"
)

// Retention exports audit events older than Keep to a JSON Lines file in
// Dir, syncs it to disk, and only then trims them from Redis: an event is
// never trimmed before it was exported. One node at a time does it.
type Retention struct {
	Service *Service
	Keep    time.Duration
	Dir     string
	Every   time.Duration // default 1 h
}

// Run applies the retention every Every until ctx ends.
func (r *Retention) Run(ctx context.Context) {
	every := r.Every
	if every == 0 {
		every = time.Hour
	}
	for {
		if ok, err := r.Service.db.TryLock(ctx, "audit-retention", every/2); err == nil && ok {
			if file, n, err := r.RunOnce(ctx); err != nil {
				r.Service.Log.Error("audit retention failed", "err", err)
			} else if n > 0 {
				r.Service.Log.Info("audit events exported and trimmed", "file", file, "events", n)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}

// RunOnce exports and trims once; it returns the file and the number of
// events moved ("" and 0 when there were none).
func (r *Retention) RunOnce(ctx context.Context) (string, int64, error) {
	now := r.Service.Now().UTC()
	name := filepath.Join(r.Dir, fmt.Sprintf("audit-%s.jsonl", now.Format("20060102T150405Z")))
	f, err := os.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return "", 0, err
	}
	w := bufio.NewWriter(f)
	var n int64
	ids, err := r.Service.db.ExportOlder(ctx, now.Add(-r.Keep), func(e store.Event) error {
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		n++
		_, err = w.Write(append(b, '\n'))
		return err
	})
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil || n == 0 {
		_ = os.Remove(name)
		return "", 0, err
	}
	// Only now, with the file safely on disk, trim what it holds.
	if _, err := r.Service.db.TrimExported(ctx, ids); err != nil {
		return name, n, err
	}
	return name, n, nil
}
