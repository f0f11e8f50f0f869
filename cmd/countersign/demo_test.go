package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the demo's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// shiftedClock is the real clock moved by whole hours so that its UTC
// hour is one of hours. The shift stays within ±11 h: webpush-go dates
// its VAPID JWT from the real clock, 12 h ahead, and the stub phone
// checks it on this clock.
func shiftedClock(hours ...int) func() time.Time {
	real := time.Now().UTC().Hour()
	for _, h := range hours {
		d := ((h-real)%24 + 24) % 24
		if d > 11 {
			d -= 24
		}
		if d >= -11 {
			shift := time.Duration(d) * time.Hour
			return func() time.Time { return time.Now().Add(shift) }
		}
	}
	panic("no hour within 11 h")
}

// The demo shows the four paths it announces at any hour of the demo
// user's day: at 01:00-03:00 UTC (night in a UTC user's zone) as at noon.
func TestDemoWithStubRunsFourPathsAtAnyHour(t *testing.T) {
	for _, tc := range []struct {
		name  string
		hours []int
	}{{"night UTC", []int{1, 2, 3}}, {"day UTC", []int{13, 14, 15}}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			var out, errOut syncBuffer
			if err := runDemo(ctx, true, "127.0.0.1:0", "", shiftedClock(tc.hours...), &out, &errOut); err != nil {
				t.Fatalf("demo: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errOut.String())
			}
			checkDemoOutput(t, out.String())
		})
	}
}

func TestDemoCommandWithStub(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, errOut syncBuffer
	code := run(ctx, []string{"demo", "--stub", "--listen", "127.0.0.1:0"}, func(string) string { return "" }, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errOut.String())
	}
	checkDemoOutput(t, out.String())
}

func checkDemoOutput(t *testing.T, text string) {
	t.Helper()
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^Admin token \(generated for this run\): \S{20,}$`),
		regexp.MustCompile(`(?m)^1\. Created the user "demo" \(spending limit 1000 EUR, time zone (UTC|Etc/GMT[-+]\d+),`),
		regexp.MustCompile(`(?m)^2\. Registered the agent "demo-agent"`),
		regexp.MustCompile(`(?m)^   http://127\.0\.0\.1:\d+/app/enroll\?code=[A-Z2-7]{32}$`),
		regexp.MustCompile(`(?m)^\s+The mobile stub enrolled as device \S+`),
		// The first small payment: context checks, never the phone.
		regexp.MustCompile(`(?m)^4\. A first small payment.*\n.*binding message "Dinner 50".*\n   ✓ token issued: approved by context \(rules: first-payment-by-agent\)$`),
		// The low-risk read: policy, at once, no phone.
		regexp.MustCompile(`(?m)^5\. A low-risk read.*\n.*binding message "Read calendar".*\n   ✓ token issued: approved by policy$`),
		// Over the limit: pending until the stub phone approves.
		// (The agent's and the phone's lines come in either order.)
		regexp.MustCompile(`(?m)^6\. A payment over the user's limit.*\n.*binding message "Flight 2400".*poll every 2s\n` +
			`(   (agent|phone): .*\n)+` +
			`   ✓ token issued: approved by device \(rules: [^)]*payment-over-limit[^)]*\), signed by device \S+$`),
		regexp.MustCompile(`(?m)^   phone: notified \(Pay 2400\.00 EUR to ACME Air\), approved "Flight 2400" with its device key$`),
		// The mandate: one phone approval of the intent, then a purchase
		// inside it approved by the mandate, and one a rule still sends to
		// the phone.
		regexp.MustCompile(`(?m)^7\. An intent mandate.*\n.*binding message "Trip to the conference".*\n` +
			`(   (agent|phone): .*\n)*   ✓ token issued: approved by device \(rules: intent_mandate\), signed by device \S+\n` +
			`   mandate [A-Za-z0-9]{22}: the agent sends mandate_id=`),
		regexp.MustCompile(`(?m)^8\. A train ticket inside the mandate.*\n.*binding message "Train 412\.50".*\n` +
			`   ✓ token issued: approved by mandate [A-Za-z0-9]{22}, the intent the device signed$`),
		regexp.MustCompile(`(?m)^9\. A 1200 EUR hotel.*\n.*binding message "Hotel 1200".*\n` +
			`(   (agent|phone): .*\n)*   ✓ token issued: approved by device \(rules: [^)]*payment-over-limit[^)]*\), signed by device \S+$`),
		regexp.MustCompile(`(?m)^Done: four paths \(context, policy, device, mandate\)\.$`),
	} {
		if !want.MatchString(text) {
			t.Fatalf("demo output lacks %s\n%s", want, text)
		}
	}
	// With the stub nobody scans: no QR code.
	if strings.ContainsAny(text, "█▀▄") {
		t.Fatalf("a QR code with --stub:\n%s", text)
	}
}

// Without --stub the demo prints the enrollment link as a QR code and
// waits for a phone.
func TestDemoPrintsQRCodeForARealPhone(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errOut syncBuffer
	done := make(chan error, 1)
	go func() { done <- runDemo(ctx, false, "127.0.0.1:0", "", time.Now, &out, &errOut) }()
	for !strings.Contains(out.String(), "Waiting for a phone to enroll") {
		select {
		case err := <-done:
			t.Fatalf("demo ended: %v\n%s\n%s", err, out.String(), errOut.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	cancel()
	<-done
	text := out.String()
	var rows []string
	for _, l := range strings.Split(text, "\n") {
		if strings.ContainsAny(l, "█▀▄") {
			rows = append(rows, l)
		}
	}
	// A square of block characters, quiet zone included.
	if len(rows) < 15 || len([]rune(rows[0])) < 29 || strings.Trim(rows[0], "█") != "" {
		t.Fatalf("no QR code in\n%s", text)
	}
}

func TestDaytimeZone(t *testing.T) {
	for h := 0; h < 24; h++ {
		at := time.Date(2026, 12, 6, h, 30, 0, 0, time.UTC)
		tz := daytimeZone(at)
		loc, err := time.LoadLocation(tz)
		if err != nil {
			t.Fatalf("%02d:30 UTC: %s: %v", h, tz, err)
		}
		if local := at.In(loc).Hour(); local != 12 {
			t.Fatalf("%02d:30 UTC in %s is %02d h, want 12", h, tz, local)
		}
	}
}
