// Command faults is Countersign's fault-injection run: two server nodes on
// one Redis with AOF, a mixed load of CIBA flows, and four faults (Redis
// kill -9, a node kill -9, Redis paused, agents' callbacks failing), then
// the checks that nothing was lost, doubled or released without a valid
// approval, and a linearizability check (porcupine) of every request's
// history. Run from the repository root:
//
//	go run ./bench/faults                       # both appendfsync modes, 3 min each
//	go run ./bench/faults -duration 30s -fsync always   # a smoke run
//
// Everything listens on loopback; Redis and the nodes are started and
// stopped by the run, in a temporary directory (kept with -keep).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

type config struct {
	duration, pause, cbFault time.Duration
	workers, users           int
	fsyncs                   []string
	out                      string
	keep                     bool
}

func main() {
	var cfg config
	var fsyncs string
	flag.DurationVar(&cfg.duration, "duration", 3*time.Minute, "load duration per appendfsync mode")
	flag.DurationVar(&cfg.pause, "pause", 10*time.Second, "how long Redis is paused (SIGSTOP)")
	flag.DurationVar(&cfg.cbFault, "callback-fault", 20*time.Second, "how long the agents' callback endpoints misbehave")
	flag.IntVar(&cfg.workers, "workers", 24, "concurrent flows")
	flag.IntVar(&cfg.users, "users", 6, "users, each with an enrolled stub phone")
	flag.StringVar(&fsyncs, "fsync", "everysec,always", "appendfsync modes to run, comma-separated")
	flag.StringVar(&cfg.out, "out", "", "write the JSON report here")
	flag.BoolVar(&cfg.keep, "keep", false, "keep the temporary directory (logs, AOF)")
	flag.Parse()
	cfg.fsyncs = strings.Split(fsyncs, ",")
	reports, err := runAll(cfg)
	if cfg.out != "" && len(reports) > 0 {
		b, _ := json.MarshalIndent(reports, "", "  ")
		if werr := os.WriteFile(cfg.out, b, 0o644); werr != nil {
			fmt.Fprintln(os.Stderr, werr)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		os.Exit(1)
	}
	for _, rep := range reports {
		if rep.failed() {
			fmt.Fprintln(os.Stderr, "faults: FAILED (", rep.Fsync, ")")
			os.Exit(1)
		}
	}
	fmt.Println("faults: PASS")
}

func (rep *report) failed() bool {
	for _, n := range rep.Bad {
		if n > 0 {
			return true
		}
	}
	return !rep.AuditOK || rep.Linearizable == "Unknown"
}

func runAll(cfg config) ([]*report, error) {
	dir, err := os.MkdirTemp("", "countersign-faults")
	if err != nil {
		return nil, err
	}
	if cfg.keep {
		fmt.Println("temporary directory:", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	bin, err := buildBinary(dir)
	if err != nil {
		return nil, err
	}
	var reports []*report
	for _, fs := range cfg.fsyncs {
		sub := filepath.Join(dir, fs)
		if err := os.MkdirAll(sub, 0o755); err != nil {
			return reports, err
		}
		rep, err := runMode(cfg, bin, sub, fs)
		if rep != nil {
			reports = append(reports, rep)
			printReport(rep)
		}
		if err != nil {
			return reports, fmt.Errorf("appendfsync %s: %w (logs in %s)", fs, err, sub)
		}
	}
	return reports, nil
}

// cluster is one Redis and two nodes.
type cluster struct {
	redis *redisProc
	nodes []*nodeProc
	api   *api
}

func startCluster(bin, dir, fsync string) (*cluster, error) {
	r, err := startRedis(dir, fsync)
	if err != nil {
		return nil, err
	}
	c := &cluster{redis: r, api: &api{hc: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}},
		admin: randToken() + randToken(), log: &callLog{}}}
	ports := [2]int{}
	for i := range ports {
		if ports[i], err = freePort(); err != nil {
			return c, err
		}
	}
	issuer := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	for i, p := range ports {
		lf, err := os.Create(filepath.Join(dir, fmt.Sprintf("node%d.log", i)))
		if err != nil {
			return c, err
		}
		n := &nodeProc{name: fmt.Sprintf("node%d", i), bin: bin, listen: fmt.Sprintf("127.0.0.1:%d", p), log: lf,
			env: []string{"COUNTERSIGN_REDIS_URL=redis://" + r.addr(), "COUNTERSIGN_ISSUER=" + issuer,
				"COUNTERSIGN_LISTEN=127.0.0.1:" + fmt.Sprint(p), "COUNTERSIGN_ADMIN_TOKEN=" + c.api.admin,
				"COUNTERSIGN_MAX_PENDING_PER_USER=0", "COUNTERSIGN_MAX_PENDING_PER_AGENT_USER=0",
				"COUNTERSIGN_MAX_PUSHES_PER_MINUTE=0",
				"COUNTERSIGN_RATE_LIMIT_PER_IP=0", "COUNTERSIGN_RATE_LIMIT_PER_CLIENT=0", "COUNTERSIGN_POLL_INTERVAL=1", "COUNTERSIGN_LOG_LEVEL=warn"}}
		c.nodes = append(c.nodes, n)
		if err := n.start(); err != nil {
			return c, fmt.Errorf("%s: %w", n.name, err)
		}
	}
	return c, nil
}

func (c *cluster) stop() {
	for _, n := range c.nodes {
		n.kill9()
		n.log.Close()
	}
	c.redis.stop()
}

// setup activates the ruleset and registers the agents and users.
func (c *cluster) setup(rc *receiver, users int) (map[string]*agent, []string, error) {
	base := c.nodes[0].url()
	if _, err := c.api.adminCall(base, "PUT", "/admin/rules", map[string]any{"ruleset": faultRules, "comment": "fault run"}); err != nil {
		return nil, nil, err
	}
	ag := map[string]*agent{}
	defs := []struct {
		name string
		meta map[string]any
	}{
		{"sub", map[string]any{"client_name": "Sub-agent", "grant_types": []string{exchangeGrant}, "scope": "openid"}},
		{"rs", map[string]any{"client_name": "Resource server", "resource_server": true, "grant_types": []string{}}},
		{"poll", map[string]any{"client_name": "Poll agent", "backchannel_token_delivery_mode": "poll"}},
		{"probe", map[string]any{"client_name": "Recovery probe", "backchannel_token_delivery_mode": "poll"}},
		{"ping", map[string]any{"client_name": "Ping agent", "backchannel_token_delivery_mode": "ping",
			"backchannel_client_notification_endpoint": rc.url()}},
		{"push", map[string]any{"client_name": "Push agent", "backchannel_token_delivery_mode": "push",
			"backchannel_client_notification_endpoint": rc.url()}},
	}
	for _, d := range defs {
		d.meta["client_id"] = "faults-" + d.name
		if d.name == "poll" {
			d.meta["delegates_to"] = []string{ag["sub"].id}
		}
		a, err := c.api.register(base, d.meta)
		if err != nil {
			return nil, nil, err
		}
		ag[d.name] = a
	}
	var ids []string
	for i := 0; i < users; i++ {
		id := fmt.Sprintf("user%d", i)
		if _, err := c.api.adminCall(base, "POST", "/admin/users", map[string]any{"id": id,
			"email": id + "@example.com", "attributes": map[string]any{"spending_limit": 1000}}); err != nil {
			return nil, nil, err
		}
		ids = append(ids, id)
	}
	return ag, ids, nil
}

// runMode is one measured run on one appendfsync mode.
func runMode(cfg config, bin, dir, fsync string) (*report, error) {
	fmt.Printf("== appendfsync %s: %s of load, %d workers, %d users\n", fsync, cfg.duration, cfg.workers, cfg.users)
	c, err := startCluster(bin, dir, fsync)
	if c != nil {
		defer c.stop()
	}
	if err != nil {
		return nil, err
	}
	rc, err := startReceiver()
	if err != nil {
		return nil, err
	}
	defer rc.close()
	agents, users, err := c.setup(rc, cfg.users)
	if err != nil {
		return nil, err
	}
	h := &history{start: time.Now()}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var phones []*handset
	for i, u := range users {
		hs, err := newHandset(ctx, c.api, c.nodes[i%2].url(), u, 1000+i, h)
		if err != nil {
			return nil, fmt.Errorf("phone for %s: %w", u, err)
		}
		defer hs.p.Close()
		phones = append(phones, hs)
		go hs.run(ctx)
	}
	l := &load{api: c.api, nodes: []string{c.nodes[0].url(), c.nodes[1].url()}, hist: h, rc: rc, agents: agents,
		users: users, reqs: map[string]*reqRecord{}, tally: map[string]int{}}
	rep := &report{Fsync: fsync, Start: time.Now().UTC(), Flows: l.tally, Decisions: map[string]int{},
		Callbacks: map[string]int{}, Bad: map[string]int{}, Info: map[string]int{}, Excused: map[string]int{}}
	inj := &injector{cluster: c, load: l, gap: max(cfg.duration/6, 3*time.Second), pause: cfg.pause, cbFault: cfg.cbFault}
	if err := drive(ctx, cfg, l, inj); err != nil {
		return nil, err
	}
	rep.Duration = time.Since(rep.Start).Round(time.Second).String()
	return rep, finish(c, l, inj, phones, rep)
}

// drive runs the load and the faults; the load stops when the duration
// has passed and every fault is over, then the flows drain.
func drive(ctx context.Context, cfg config, l *load, inj *injector) error {
	var wg sync.WaitGroup
	for i := 0; i < cfg.workers; i++ {
		wg.Add(1)
		go func(n int) { defer wg.Done(); l.worker(ctx, n) }(i)
	}
	t0 := time.Now()
	err := inj.run(ctx)
	if rest := cfg.duration - time.Since(t0); rest > 0 {
		time.Sleep(rest)
	}
	l.dead.Store(true)
	fmt.Println("  load stopped; draining flows")
	wg.Wait()
	return err
}

func finish(c *cluster, l *load, inj *injector, phones []*handset, rep *report) error {
	time.Sleep(3 * time.Second) // the last callbacks and decisions land
	for _, f := range inj.faults {
		if strings.HasPrefix(f.Name, "redis kill") {
			rep.kills = append(rep.kills, f.Start)
		}
	}
	if rep.Fsync == "everysec" {
		rep.excuse = func(id string) bool { return ackedBeforeKill(l.hist, id, rep.kills) }
	}
	if err := c.verify(l, phones, rep); err != nil {
		return err
	}
	addCallbackOps(l)
	linearizability(l.hist, rep)
	faultWindows(c.api.log, inj.faults, l.rc, rep)
	r, err := c.api.adminCall(c.nodes[0].url(), "POST", "/admin/audit/verify", nil)
	if err != nil {
		return err
	}
	rep.AuditOK = r.Body["ok"] == true
	n, _ := r.Body["checked"].(float64)
	rep.AuditChecked = int(n)
	rep.RedisAOF = redisInfo(c.redis.addr())
	l.rc.mu.Lock()
	rep.Sabotaged = l.rc.sabotage
	l.rc.mu.Unlock()
	return nil
}
