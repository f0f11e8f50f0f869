package oauth_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/countersign/countersign/ciba/oauth"
	"github.com/countersign/countersign/ciba/store/redistest"
)

// reply has the marker of go-redis's error replies (redis.Error), for the
// replies a test server cannot be made to send (LOADING, CLUSTERDOWN...).
type reply string

func (r reply) Error() string { return string(r) }
func (reply) RedisError()     {}

var _ redis.Error = reply("")

func TestIsUnavailable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	<-ctx.Done()
	// A port nobody listens on: connection refused, as from a stopped Redis.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	down := redis.NewClient(&redis.Options{Addr: dead, MaxRetries: -1, DialerRetries: 1})
	defer down.Close()
	refused := down.Ping(context.Background()).Err()

	m := redistest.Mini(t)
	m.Client.Set(context.Background(), "k", "v", 0)
	wrongType := m.Client.LPush(context.Background(), "k", "x").Err()

	for _, c := range []struct {
		err  error
		want bool
	}{
		{ctx.Err(), true},
		{fmt.Errorf("store: poll: %w", context.DeadlineExceeded), true},
		{context.Canceled, true},
		{refused, true},
		{fmt.Errorf("rulesync: %w", refused), true},
		{redis.ErrPoolTimeout, true},
		{redis.ErrPoolExhausted, true},
		{redis.ErrClosed, true},
		{reply("LOADING Redis is loading the dataset in memory"), true},
		{fmt.Errorf("x: %w", reply("CLUSTERDOWN The cluster is down")), true},
		{reply("TRYAGAIN Multiple keys request during rehashing of slot"), true},
		{reply("MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'."), true},
		{reply("READONLY You can't write against a read only replica."), true},
		{reply("ERR max number of clients reached"), true},
		{reply("BUSY Redis is busy running a script."), true},
		{reply("OOM command not allowed when used memory > 'maxmemory'."), true},
		// Answers, not outages: they stay errors of ours (server_error).
		{wrongType, false},
		{redis.ErrCrossSlot, false},
		{reply("BUSYGROUP Consumer Group name already exists"), false},
		{reply("ERR Error running script (call to f_x): @user_script:1: bad"), false},
		{errors.New("store: request record: invalid character"), false},
		{nil, false},
	} {
		if got := oauth.IsUnavailable(c.err); got != c.want {
			t.Errorf("IsUnavailable(%v) = %v, want %v", c.err, got, c.want)
		}
	}
	if refused == nil || wrongType == nil {
		t.Fatalf("the test's errors did not happen: %v, %v", refused, wrongType)
	}
}

func TestUnavailableAnswer(t *testing.T) {
	e := oauth.Unavailable()
	if e.Status != 503 || e.Code != oauth.TemporarilyUnavailable || e.Header.Get("Retry-After") != oauth.RetryAfterUnavailable || e.Description == "" {
		t.Fatalf("%+v", e)
	}
}
