package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestConfigFromEnvironmentAndFlags(t *testing.T) {
	env := map[string]string{"COUNTERSIGN_LISTEN": "127.0.0.1:9000", "COUNTERSIGN_DEV": "true", "COUNTERSIGN_ACCESS_TOKEN_TTL": "2m",
		"COUNTERSIGN_MAX_PUSHES_PER_MINUTE": "7"}
	c, err := parseConfig([]string{"--listen", "127.0.0.1:9100"}, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	// Flags win over the environment; the environment over defaults.
	if c.Listen != "127.0.0.1:9100" || !c.Dev || c.AccessTokenTTL != 2*time.Minute || c.MaxPushesPerMinute != 7 ||
		c.Issuer != "" || c.MaxExpiry != 1800*time.Second || c.DefaultExpiry != 300*time.Second {
		t.Fatalf("config: %+v", c)
	}
	if _, err := parseConfig(nil, func(k string) string {
		return map[string]string{"COUNTERSIGN_POLL_INTERVAL": "soon"}[k]
	}, io.Discard); err == nil || !strings.Contains(err.Error(), "COUNTERSIGN_POLL_INTERVAL") {
		t.Fatalf("a bad environment value: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	base := func() *Config {
		c, err := parseConfig(nil, func(string) string { return "" }, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	cases := []struct {
		name   string
		mutate func(*Config)
		want   string // "" means valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"https issuer", func(c *Config) { c.Issuer = "https://auth.example" }, ""},
		{"http issuer off loopback", func(c *Config) { c.Issuer = "http://auth.example" }, "https unless"},
		{"http issuer in dev", func(c *Config) { c.Issuer, c.Dev = "http://auth.lan", true }, ""},
		{"issuer with slash", func(c *Config) { c.Issuer = "https://auth.example/" }, "trailing slash"},
		{"issuer with query", func(c *Config) { c.Issuer = "https://auth.example?x=1" }, "no query"},
		{"relative issuer", func(c *Config) { c.Issuer = "auth.example" }, "absolute"},
		{"bad listen", func(c *Config) { c.Listen = "8080" }, "listen"},
		{"redis without token", func(c *Config) { c.RedisURL = "redis://127.0.0.1:6379" }, "admin-token is required"},
		{"redis with token", func(c *Config) { c.RedisURL, c.AdminToken = "redis://127.0.0.1:6379/2", "0123456789abcdef" }, ""},
		{"sentinel", func(c *Config) {
			c.RedisURL, c.AdminToken = "redis+sentinel://h1:26379,h2:26379/mymaster?db=1", "0123456789abcdef"
		}, ""},
		{"sentinel without master", func(c *Config) { c.RedisURL, c.AdminToken = "redis+sentinel://h1:26379", "0123456789abcdef" }, "master"},
		{"cluster", func(c *Config) { c.RedisURL, c.AdminToken = "redis+cluster://h1:7000,h2:7001", "0123456789abcdef" }, ""},
		{"unknown scheme", func(c *Config) { c.RedisURL, c.AdminToken = "memcache://h", "0123456789abcdef" }, "unsupported scheme"},
		{"short admin token", func(c *Config) { c.AdminToken = "short" }, "at least 16"},
		{"default over max expiry", func(c *Config) { c.DefaultExpiry = time.Hour }, "must not exceed"},
		{"tiny token ttl", func(c *Config) { c.AccessTokenTTL = time.Millisecond }, "between 1s and 24h"},
		{"poll interval", func(c *Config) { c.PollInterval = 0 }, "poll-interval"},
		{"negative cap", func(c *Config) { c.MaxPendingPerUser = -1 }, "must not be negative"},
		{"vapid with mailto", func(c *Config) { c.VAPIDSubject = "mailto:ops@example.com" }, "without mailto"},
		{"retention without dir", func(c *Config) { c.AuditRetention = 48 * time.Hour }, "audit-export-dir"},
		{"short retention", func(c *Config) { c.AuditRetention, c.AuditExportDir = time.Minute, "/tmp" }, "at least 1h"},
		{"short key rotation", func(c *Config) { c.KeyRotation = time.Minute }, "signing-key-rotation"},
		{"log level", func(c *Config) { c.LogLevel = "loud" }, "log-level"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := base()
			tc.mutate(c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("want valid, got %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("want an error with %q, got %v", tc.want, err)
			}
		})
	}
}

func TestHelpNeverPrintsTheAdminToken(t *testing.T) {
	env := map[string]string{"COUNTERSIGN_ADMIN_TOKEN": "very-secret-admin-token"}
	var out strings.Builder
	if _, err := parseConfig([]string{"--help"}, func(k string) string { return env[k] }, &out); err != errHelp {
		t.Fatalf("--help: %v", err)
	}
	if strings.Contains(out.String(), "very-secret") || !strings.Contains(out.String(), "COUNTERSIGN_ADMIN_TOKEN") {
		t.Fatalf("help output: %s", out.String())
	}
	c, err := parseConfig(nil, func(k string) string { return env[k] }, io.Discard)
	if err != nil || c.AdminToken != "very-secret-admin-token" {
		t.Fatalf("the token from the environment was not applied: %v", err)
	}
}

func TestServeRefusesABadConfiguration(t *testing.T) {
	var stderr strings.Builder
	code := run(t.Context(), []string{"serve", "--issuer", "ftp://x"}, func(string) string { return "" }, io.Discard, &stderr)
	if code != 2 || !strings.Contains(stderr.String(), "issuer must be an absolute http(s) URL") {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
}

// lineWriter hands each written line to a channel.
type lineWriter struct{ lines chan string }

func (w lineWriter) Write(b []byte) (int, error) {
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		w.lines <- l
	}
	return len(b), nil
}

// The README's first command: serve on the embedded store, print the
// admin token, answer, and shut down cleanly when told to.
func TestServeEmbeddedStartsAndShutsDown(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	out := lineWriter{lines: make(chan string, 16)}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--listen", "127.0.0.1:0"}, func(string) string { return "" }, out, io.Discard)
	}()
	var token, addr string
	for addr == "" {
		select {
		case l := <-out.lines:
			if v, ok := strings.CutPrefix(l, "Admin token (generated for this run): "); ok {
				token = v
			}
			if _, rest, ok := strings.Cut(l, "listening on http://"); ok {
				addr, _, _ = strings.Cut(rest, " ")
			}
		case code := <-done:
			t.Fatalf("serve exited with %d", code)
		case <-time.After(10 * time.Second):
			t.Fatal("serve did not start")
		}
	}
	if len(token) < 16 {
		t.Fatalf("no generated admin token: %q", token)
	}
	req, _ := http.NewRequest("GET", "http://"+addr+"/admin/clients", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("admin API with the printed token: %v %v", resp, err)
	}
	resp.Body.Close()
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("shutdown exit %d", code)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not shut down")
	}
}
