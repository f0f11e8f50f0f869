// Package ratelog keeps a failure that repeats from flooding the log: a
// background loop that fails on every turn while Redis is down logs the
// first failure at once, then at most one line per interval with the
// number of failures since the previous line, and one line when it
// succeeds again. A loop that flaps between failure and success still
// writes at most two lines per interval.
//
// It imports nothing of ours.
package ratelog

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// DefaultEvery is the interval between two lines of one failure.
const DefaultEvery = 10 * time.Second

// Failure is one kind of repeating failure (one loop, one message). Its
// methods are safe for concurrent use; a nil *Failure logs nothing.
type Failure struct {
	log   *slog.Logger
	level slog.Level
	msg   string
	// Every is the interval between two lines (DefaultEvery).
	Every time.Duration
	// Now is the clock (time.Now).
	Now func() time.Time

	mu      sync.Mutex
	failing bool
	said    bool      // a line of the current run was written
	since   time.Time // start of the current run of failures
	last    time.Time // when the last line was written
	unsaid  int       // failures since the last line
	total   int       // failures of the current run
}

// New returns a Failure that logs msg at level to log.
func New(log *slog.Logger, level slog.Level, msg string) *Failure {
	return &Failure{log: log, level: level, msg: msg}
}

// Fail records one failure. The first of a run is logged at once; later
// ones only when Every has passed since the last line, with "failures",
// the count since that line.
func (f *Failure) Fail(err error, args ...any) {
	if f == nil {
		return
	}
	now := f.now()
	f.mu.Lock()
	if !f.failing {
		f.failing, f.said, f.since, f.total = true, false, now, 0
	}
	f.total++
	f.unsaid++
	if !f.last.IsZero() && now.Sub(f.last) < f.every() {
		f.mu.Unlock()
		return
	}
	n := f.unsaid
	f.unsaid, f.last, f.said = 0, now, true
	f.mu.Unlock()
	f.log.Log(context.Background(), f.level, f.msg, append(args, "err", err, "failures", n)...)
}

// OK ends a run of failures, if one was under way, with one line saying
// how many failures it had and how long it lasted (when the run had a
// line of its own: a run kept silent by the interval ends silently, and
// its count goes into the next failure line).
func (f *Failure) OK() {
	if f == nil {
		return
	}
	f.mu.Lock()
	if !f.failing {
		f.mu.Unlock()
		return
	}
	total, took, said := f.total, f.now().Sub(f.since), f.said
	f.failing = false
	f.mu.Unlock()
	if !said {
		return
	}
	f.log.Info(f.msg+": recovered", "failures", total, "after_ms", took.Milliseconds())
}

func (f *Failure) every() time.Duration {
	if f.Every > 0 {
		return f.Every
	}
	return DefaultEvery
}

func (f *Failure) now() time.Time {
	if f.Now != nil {
		return f.Now()
	}
	return time.Now()
}
