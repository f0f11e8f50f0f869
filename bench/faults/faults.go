package main

import (
	"context"
	"fmt"
	"net/url"
	"syscall"
	"time"
)

// faultRec is one injected fault: when it began, when the injector undid
// it (restart, SIGCONT, endpoints healthy again), and when both nodes
// next completed a whole flow (bc-authorize and token).
type faultRec struct {
	Name      string    `json:"name"`
	Start     time.Time `json:"start"`
	End       time.Time `json:"end"`
	Recovered time.Time `json:"recovered"`
	Note      string    `json:"note,omitempty"`
}

// injector runs the faults one after another, gap apart.
type injector struct {
	cluster *cluster
	load    *load
	gap     time.Duration
	pause   time.Duration
	cbFault time.Duration
	faults  []faultRec
}

func (in *injector) run(ctx context.Context) error {
	steps := []struct {
		name string
		do   func() (string, error)
	}{
		{"redis kill -9, restart on the same AOF", in.killRedis},
		{"node kill -9 and restart", in.killNode},
		{fmt.Sprintf("redis SIGSTOP %s, SIGCONT", in.pause), in.pauseRedis},
		{fmt.Sprintf("callback endpoints 5xx/hang/reset for %s", in.cbFault), in.badCallbacks},
	}
	for _, s := range steps {
		if err := sleepCtx(ctx, in.gap); err != nil {
			return nil
		}
		f := faultRec{Name: s.name, Start: time.Now()}
		note, err := s.do()
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		f.End, f.Note = time.Now(), note
		f.Recovered = in.probe(ctx)
		in.faults = append(in.faults, f)
		fmt.Printf("  fault %-45s %6.1fs, recovered %.2fs after it ended\n", f.Name,
			f.End.Sub(f.Start).Seconds(), f.Recovered.Sub(f.End).Seconds())
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

func (in *injector) killRedis() (string, error) {
	r := in.cluster.redis
	if err := r.kill9(); err != nil {
		return "", err
	}
	time.Sleep(time.Second)
	return "", r.start()
}

func (in *injector) killNode() (string, error) {
	n := in.cluster.nodes[1]
	n.kill9()
	time.Sleep(2 * time.Second)
	return "", n.start()
}

func (in *injector) pauseRedis() (string, error) {
	r := in.cluster.redis
	if err := r.signal(syscall.SIGSTOP); err != nil {
		return "", err
	}
	time.Sleep(in.pause)
	return "", r.signal(syscall.SIGCONT)
}

func (in *injector) badCallbacks() (string, error) {
	in.load.rc.faulty.Store(true)
	time.Sleep(in.cbFault)
	in.load.rc.faulty.Store(false)
	return "", nil
}

// probe returns when both nodes have each completed a policy flow
// (bc-authorize, then the token) once more.
func (in *injector) probe(ctx context.Context) time.Time {
	c := in.load.agents["probe"]
	for _, base := range in.load.nodes {
		for ctx.Err() == nil {
			v := url.Values{"scope": {"openid"}, "login_hint": {in.load.users[0]}, "authorization_details": {details[kindPolicy]}}
			r := in.load.api.form(ctx, base, "/bc-authorize", c, v)
			if r.Status == 200 {
				t := in.load.api.form(ctx, base, "/token", c, url.Values{"grant_type": {cibaGrant}, "auth_req_id": {r.str("auth_req_id")}})
				if t.Status == 200 {
					break
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return time.Now()
}
