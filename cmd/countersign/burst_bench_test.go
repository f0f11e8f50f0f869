package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// BenchmarkPingBurst approves a burst of requests for a ping client at
// once (policy approval inside /bc-authorize) and waits for every callback:
// callbacks per second, the latency from sending the request to receiving
// its ping (p50, p99), and lost callbacks (must be 0). Run with
// -benchtime 1x; COUNTERSIGN_BURST sets the burst (default 10000) and
// COUNTERSIGN_BURST_WORKERS the requests in flight (default 64; 2 or 4
// give the latency at moderate load).
func BenchmarkPingBurst(b *testing.B) {
	burst := 10000
	if v, err := strconv.Atoi(os.Getenv("COUNTERSIGN_BURST")); err == nil && v > 0 {
		burst = v
	}
	workers := 64
	if v, err := strconv.Atoi(os.Getenv("COUNTERSIGN_BURST_WORKERS")); err == nil && v > 0 {
		workers = v
	}
	bn := startPerfNode(b)
	var mu sync.Mutex
	sent := make(map[string]time.Time, burst)
	got := make(map[string]time.Duration, burst)
	var bad int
	done := make(chan struct{})
	cb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		var body struct {
			AuthReqID string `json:"auth_req_id"`
		}
		err := json.NewDecoder(r.Body).Decode(&body)
		mu.Lock()
		defer mu.Unlock()
		at, ok := sent[tok]
		if err != nil || !ok || body.AuthReqID == "" {
			bad++
			w.WriteHeader(401)
			return
		}
		if _, dup := got[tok]; !dup {
			got[tok] = time.Since(at)
			if len(got) == burst {
				close(done)
			}
		}
		w.WriteHeader(204)
	}))
	defer cb.Close()
	id, secret := bn.client(map[string]any{"client_id": "pinger", "backchannel_token_delivery_mode": "ping",
		"backchannel_client_notification_endpoint": cb.URL + "/cb"})
	for n := 0; n < b.N; n++ {
		b.ResetTimer()
		start := time.Now()
		var wg sync.WaitGroup
		work := make(chan int)
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range work {
					tok := fmt.Sprintf("burst-%d-%d", n, i)
					mu.Lock()
					sent[tok] = time.Now()
					mu.Unlock()
					form := url.Values{"scope": {"openid"}, "login_hint": {"user-" + strconv.Itoa(i%benchUsers)},
						"authorization_details": {readDetails}, "client_notification_token": {tok}}
					if st, raw, err := bn.send("POST", "/bc-authorize", formType, id, secret, nil, form.Encode(), nil); err != nil || st != 200 {
						b.Errorf("bc-authorize: %d %s %v", st, raw, err)
					}
				}
			}()
		}
		for i := 0; i < burst; i++ {
			work <- i
		}
		close(work)
		wg.Wait()
		mu.Lock()
		finished := done
		mu.Unlock()
		select {
		case <-finished:
		case <-time.After(2 * time.Minute):
		}
		elapsed := time.Since(start)
		b.StopTimer()
		mu.Lock()
		lat := make([]time.Duration, 0, len(got))
		for _, d := range got {
			lat = append(lat, d)
		}
		lost := burst - len(got)
		mu.Unlock()
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		if len(lat) == 0 {
			b.Fatal("no callback arrived")
		}
		b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "callbacks/s")
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		b.ReportMetric(float64(lost), "lost")
		if lost != 0 || bad != 0 {
			b.Fatalf("%d callbacks lost, %d refused", lost, bad)
		}
		// Next round: new tokens, a fresh completion signal.
		mu.Lock()
		done = make(chan struct{})
		clear(got)
		clear(sent)
		mu.Unlock()
	}
}
