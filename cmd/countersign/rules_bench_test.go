package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/countersign/countersign/ciba/store/redistest"
)

// BenchmarkBCAuthorizeWhileActivating measures /bc-authorize throughput on
// a node while another goroutine activates rulesets in a loop: no request
// may fail, and max-ms (the slowest request) shows there is no stall.
// Compare with the steady sub-benchmark.
func BenchmarkBCAuthorizeWhileActivating(b *testing.B) {
	allowReads := func(name string) string {
		return "format: countersign/v1\nname: " + name + "\nrules:\n  - id: reads\n    when: \"'read' in action.actions\"\n" +
			"    decision: allow\n    reason: reads pass\n"
	}
	for _, activating := range []bool{false, true} {
		name := "steady"
		if activating {
			name = "activating"
		}
		b.Run(name, func(b *testing.B) {
			tn := benchNode(b)
			put := func(src string) {
				req := mustReqTB(b, "PUT", tn.URL+"/admin/rules", rulesJSON(map[string]any{"ruleset": src}))
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Errorf("activate: %d", resp.StatusCode)
				}
			}
			put(allowReads("a"))
			stop := make(chan struct{})
			done := make(chan int)
			go func() {
				n := 0
				for activating {
					select {
					case <-stop:
						done <- n
						return
					default:
					}
					put(allowReads([]string{"a", "b"}[n%2]))
					n++
					time.Sleep(20 * time.Millisecond) // 50 activations a second: far more than admins do

				}
				done <- n
			}()
			var worst time.Duration
			form := url.Values{"scope": {"openid"}, "login_hint": {"alice@example.com"}, "authorization_details": {readDetails}}.Encode()
			for b.Loop() {
				start := time.Now()
				req := mustReqTB(b, "POST", tn.URL+"/bc-authorize", form)
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.SetBasicAuth(tn.clientID, tn.secret)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatalf("bc-authorize: %d %s", resp.StatusCode, body)
				}
				worst = max(worst, time.Since(start))
			}
			close(stop)
			b.ReportMetric(float64(<-done), "activations")
			b.ReportMetric(float64(worst.Microseconds())/1000, "max-ms")
		})
	}
}

// benchTarget is a node for benchmarks, with an agent and a user.
type benchTarget struct {
	URL, clientID, secret string
}

// benchNode starts a node for a benchmark (the harness takes a
// *testing.T) and registers an agent and a user.
func benchNode(b *testing.B) benchTarget {
	b.Helper()
	rs := redistest.Real(b)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	cfg, err := parseConfig(nil, func(string) string { return "" }, io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	cfg.Issuer, cfg.RedisURL, cfg.KeyPrefix, cfg.AdminToken, cfg.Dev = "http://"+ln.Addr().String(), "redis://"+rs.Addr, rs.Prefix, testAdminToken, true
	ctx, cancel := context.WithCancel(context.Background())
	n, err := newNode(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), io.Discard, time.Now)
	if err != nil {
		cancel()
		b.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(n.handler)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	b.Cleanup(func() { srv.Close(); cancel(); n.close() })
	bt := benchTarget{URL: cfg.Issuer}
	adminJSON := func(path string, body any) map[string]any {
		req := mustReqTB(b, "POST", bt.URL+path, rulesJSON(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		if resp.StatusCode != 201 {
			b.Fatalf("%s: %d %v", path, resp.StatusCode, m)
		}
		return m
	}
	c := adminJSON("/admin/clients", map[string]any{"client_id": "bench-agent", "agent": map[string]any{"trust_tier": "standard"}})
	bt.clientID, _ = c["client_id"].(string)
	bt.secret, _ = c["client_secret"].(string)
	adminJSON("/admin/users", map[string]any{"id": "alice", "email": "alice@example.com"})
	return bt
}

func rulesJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// mustReqTB is an admin request (JSON body, admin token) for benchmarks.
func mustReqTB(tb testing.TB, method, u, body string) *http.Request {
	tb.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	req.Header.Set("Content-Type", "application/json")
	return req
}
