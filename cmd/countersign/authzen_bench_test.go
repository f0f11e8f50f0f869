package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// authzenBench is a node with the Todo ruleset, benchUsers users and a
// PEP, and a counter of its Redis round trips.
type authzenBench struct {
	tn     *testNode
	hc     *http.Client
	trips  *tripCounter
	pep    string
	secret string
}

func startAuthZENBench(b *testing.B) *authzenBench {
	src, err := os.ReadFile("../../rules/examples/authzen-todo.yaml")
	if err != nil {
		b.Fatal(err)
	}
	tn := startWithRules(b, string(src))
	tc := &tripCounter{}
	tn.db.Redis().AddHook(tc)
	ab := &authzenBench{tn: tn, hc: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}, trips: tc}
	b.Cleanup(ab.hc.CloseIdleConnections)
	for i := 0; i < benchUsers; i++ {
		tn.user(map[string]any{"id": fmt.Sprintf("user-%d", i), "email": fmt.Sprintf("user-%d@example.com", i),
			"attributes": map[string]any{"roles": []string{"editor"}}})
	}
	ab.pep, ab.secret = tn.client(map[string]any{"client_id": "gateway", "policy_enforcement_point": true})
	return ab
}

// evaluate sends one policy-path evaluation (an editor reads the todos).
func (ab *authzenBench) evaluate(i int) error {
	body := fmt.Sprintf(`{"subject":{"type":"user","id":"user-%d@example.com"},"action":{"name":"can_read_todos"},"resource":{"type":"todo","id":"t%d"}}`,
		i%benchUsers, i)
	req, _ := http.NewRequest("POST", ab.tn.URL+"/access/v1/evaluation", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(ab.pep, ab.secret)
	resp, err := ab.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var out struct{ Decision bool }
	if err := jsonDecode(resp, &out); err != nil || resp.StatusCode != 200 || !out.Decision {
		return fmt.Errorf("evaluation: %d %v %v", resp.StatusCode, out, err)
	}
	return nil
}

// BenchmarkAuthZENEvaluation is one AuthZEN evaluation on the policy
// path at a time; p50-ms and p99-ms are its latency, rt/op its Redis
// round trips.
func BenchmarkAuthZENEvaluation(b *testing.B) {
	ab := startAuthZENBench(b)
	for i := 0; i < 4; i++ {
		if err := ab.evaluate(i); err != nil {
			b.Fatal(err)
		}
	}
	reportTrips(b, &perfNode{trips: ab.trips}, "evaluation", func() { _ = ab.evaluate(5) })
	lat := make([]time.Duration, 0, b.N)
	t0 := ab.trips.n.Load()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if err := ab.evaluate(i); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(ab.trips.n.Load()-t0)/float64(b.N), "rt/op")
}

// BenchmarkAuthZENEvaluationParallel is the same with 16 evaluations in
// flight on two cores: ns/op is wall time per evaluation (1e9/ns-op is
// evaluations per second).
func BenchmarkAuthZENEvaluationParallel(b *testing.B) {
	ab := startAuthZENBench(b)
	var seq atomic.Int64
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := ab.evaluate(int(seq.Add(1))); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func jsonDecode(resp *http.Response, v any) error { return json.NewDecoder(resp.Body).Decode(v) }
