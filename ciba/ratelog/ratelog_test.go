package ratelog_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/countersign/countersign/ciba/ratelog"
)

type line struct {
	Msg      string
	Level    string
	Failures int
	Err      string
}

func lines(t *testing.T, b *bytes.Buffer) []line {
	t.Helper()
	var out []line
	for _, s := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if s == "" {
			continue
		}
		var l line
		if err := json.Unmarshal([]byte(s), &l); err != nil {
			t.Fatalf("not JSON: %s", s)
		}
		out = append(out, l)
	}
	b.Reset()
	return out
}

func TestFailureFirstThenCountedThenRecovered(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(1000, 0)
	f := ratelog.New(slog.New(slog.NewJSONHandler(&buf, nil)), slog.LevelWarn, "outbox read failed")
	f.Now = func() time.Time { return now }
	boom := errors.New("dial tcp: connection refused")
	// 8 failures a second for 25 s: the first at once, then one per 10 s.
	for i := 0; i < 200; i++ {
		f.Fail(boom)
		now = now.Add(125 * time.Millisecond)
	}
	got := lines(t, &buf)
	if len(got) != 3 || got[0].Failures != 1 || got[1].Failures != 80 || got[2].Failures != 80 ||
		got[0].Level != "WARN" || got[0].Msg != "outbox read failed" || got[0].Err != boom.Error() {
		t.Fatalf("%+v", got)
	}
	f.OK()
	f.OK()
	if got := lines(t, &buf); len(got) != 1 || got[0].Msg != "outbox read failed: recovered" || got[0].Failures != 200 || got[0].Level != "INFO" {
		t.Fatalf("%+v", got)
	}
	// Flapping: fail and recover 100 times within one interval.
	for i := 0; i < 100; i++ {
		f.Fail(boom)
		f.OK()
		now = now.Add(50 * time.Millisecond)
	}
	if got := lines(t, &buf); len(got) > 2 {
		t.Fatalf("flapping wrote %d lines: %+v", len(got), got)
	}
	var nilF *ratelog.Failure
	nilF.Fail(boom)
	nilF.OK()
}
