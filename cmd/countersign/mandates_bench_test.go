package main

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"
)

// BenchmarkMandateAuthorize compares /bc-authorize acting within an intent
// mandate (mandate_id, a purchase its budget covers: read in the lookup's
// pipeline, re-checked and charged in the request script) with an
// ordinary low-risk request approved by policy. rt-bc/op is the Redis
// round trips of one bc-authorize; both should be the same.
func BenchmarkMandateAuthorize(b *testing.B) {
	tn := startNode(b, func(c *Config) { c.MaxPendingPerUser, c.MaxPendingPerAgent, c.MaxPushesPerMinute = 0, 0, 0 })
	tc := &tripCounter{}
	tn.db.Redis().AddHook(tc)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.Cleanup(hc.CloseIdleConnections)
	bn := &perfNode{node: tn.node, tb: b, URL: tn.URL, clock: tn.clock, hc: hc, trips: tc}
	bn.id, bn.secret = bn.client(map[string]any{"client_id": "agent-1", "agent": map[string]any{"trust_tier": "standard"}})
	for _, u := range []string{"user-0", "user-1"} {
		tn.user(map[string]any{"id": u, "attributes": map[string]any{"spending_limit": 1000, "timezone": "UTC"}})
	}
	f := &mandateFixture{t: b, user: "user-0", tn: tn, id: bn.id, secret: bn.secret, ph: tn.enrollPhone("user-0", "Pixel")}
	mid, _ := f.createMandate(travel(tn.clock.Now().Add(24*time.Hour), "1000000", 0))
	within := url.Values{"scope": {"openid"}, "login_hint": {"user-0"}, "authorization_details": {pay(0.01)}, "mandate_id": {mid}}
	plain := url.Values{"scope": {"openid"}, "login_hint": {"user-1"}, "authorization_details": {readDetails}}
	for _, c := range []struct {
		name string
		form url.Values
	}{{"plain", plain}, {"mandate", within}} {
		name, form := c.name, c.form
		b.Run(name, func(b *testing.B) {
			call := func() {
				var out struct {
					Interval *int `json:"interval"`
				}
				st, raw, err := bn.send("POST", "/bc-authorize", formType, bn.id, bn.secret, nil, form.Encode(), &out)
				if err != nil || st != 200 || out.Interval == nil || *out.Interval != 1 {
					b.Fatalf("bc-authorize: %d %s %v", st, raw, err)
				}
			}
			call() // load the scripts
			reportTrips(b, bn, "bc-authorize "+name, call)
			var trips int64
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if i%150 == 149 {
					// The default rules score more than 200 requests an
					// hour by one agent for one user: a fresh hour.
					tn.clock.Advance(time.Hour)
				}
				t0 := tc.n.Load()
				call()
				trips += tc.n.Load() - t0
			}
			b.ReportMetric(float64(trips)/float64(b.N), "rt-bc/op")
		})
	}
	v, err := tn.service.Mandate(context.Background(), mid)
	if err != nil || v.Uses == 0 {
		b.Fatalf("nothing was charged to the mandate: %v %+v", err, v)
	}
}
