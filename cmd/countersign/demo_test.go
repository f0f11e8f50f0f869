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

func TestDemoWithStubRunsThreePaths(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, errOut syncBuffer
	code := run(ctx, []string{"demo", "--stub", "--listen", "127.0.0.1:0"}, func(string) string { return "" }, &out, &errOut)
	text := out.String()
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, text, errOut.String())
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^Admin token \(generated for this run\): \S{20,}$`),
		regexp.MustCompile(`(?m)^1\. Created the user "demo"`),
		regexp.MustCompile(`(?m)^2\. Registered the agent "demo-agent"`),
		regexp.MustCompile(`(?m)^   http://127\.0\.0\.1:\d+/app/enroll\?code=[A-Z2-7]{32}$`),
		regexp.MustCompile(`(?m)^\s+The mobile stub enrolled as device \S+`),
		// The first small payment: context checks (the device path at night, RULES.md night-time).
		regexp.MustCompile(`(?m)^4\. A first small payment.*\n.*binding message "Dinner 50".*\n(.*phone.*\n)*   ✓ token issued: approved by (context|device) \(rules: first-payment-by-agent`),
		// The low-risk read: policy, at once, no phone.
		regexp.MustCompile(`(?m)^5\. A low-risk read.*\n.*binding message "Read calendar".*\n   ✓ token issued: approved by policy$`),
		// Over the limit: pending until the stub phone approves.
		regexp.MustCompile(`(?m)^6\. A payment over the user's limit.*\n.*binding message "Flight 2400".*poll every 2s\n` +
			`   agent: authorization_pending: waiting for the phone.*\n` +
			`   phone: notified \(Pay 2400\.00 EUR to ACME Air\), approved "Flight 2400" with its device key\n` +
			`   ✓ token issued: approved by device \(rules: [^)]*payment-over-limit[^)]*\), signed by device \S+$`),
		regexp.MustCompile(`(?m)^Done: three requests`),
	} {
		if !want.MatchString(text) {
			t.Fatalf("demo output lacks %s\n%s", want, text)
		}
	}
	// The QR code: a square of block characters, quiet zone included.
	var rows []string
	for _, l := range strings.Split(text, "\n") {
		if strings.ContainsAny(l, "█▀▄") {
			rows = append(rows, l)
		}
	}
	if len(rows) < 15 || len([]rune(rows[0])) < 29 || strings.Trim(rows[0], "█") != "" {
		t.Fatalf("no QR code in\n%s", text)
	}
}
