package notify_test

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/countersign/countersign/notify"
)

// BenchmarkPush measures whole pushes per second, aes128gcm encryption and
// VAPID signing included, into a local receiver that answers 201.
func BenchmarkPush(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusCreated)
	}))
	b.Cleanup(srv.Close)
	priv, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	auth := make([]byte, 16)
	_, _ = rand.Read(auth)
	var sub notify.Subscription
	sub.Endpoint = srv.URL + "/push/bench"
	sub.Keys.P256dh = base64.RawURLEncoding.EncodeToString(priv.PublicKey().Bytes())
	sub.Keys.Auth = base64.RawURLEncoding.EncodeToString(auth)
	p := newPusher(b)
	m := notify.Message{Payload: payload, TTL: 5 * time.Minute, Urgency: "high", Topic: "req-1"}
	ctx := context.Background()
	start := time.Now()
	n := 0
	for b.Loop() {
		if r := p.Send(ctx, sub, m); r.Outcome != notify.Delivered {
			b.Fatalf("Send = %+v", r)
		}
		n++
	}
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "pushes/s")
}
