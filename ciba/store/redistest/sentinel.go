package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// sentinelPatience bounds each wait of a SentinelSet: start, sync,
// discovery, shutdown, failover. Reaching it fails the test.
const sentinelPatience = 20 * time.Second

// SentinelSet is a Redis master with one replica, watched by three
// Sentinels (quorum 2), for tests of a failover. No persistence: what
// survives a failover is what was replicated.
type SentinelSet struct {
	// Name is the master name the Sentinels monitor.
	Name string
	// Sentinels are the Sentinels' addresses.
	Sentinels []string
	// Master and Replica are the data servers' addresses as started; a
	// failover swaps their roles.
	Master, Replica string

	t   testing.TB
	bin string

	mu    sync.Mutex
	procs map[string]*exec.Cmd // running servers and Sentinels, by address
	logs  []string             // every server's log file
}

// Sentinel starts a master, its replica (in sync when Sentinel returns)
// and three Sentinels that know both and each other, on free loopback
// ports for one test. Everything stops when the test ends.
func Sentinel(t testing.TB) *SentinelSet {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redistest: redis-server not found: install it with `apt-get install -y redis-server`")
	}
	s := &SentinelSet{Name: "cs-master", t: t, bin: bin, procs: map[string]*exec.Cmd{}}
	t.Cleanup(s.killAll)
	// No delay before a full sync (Redis 7 waits 5 s by default, for more
	// replicas to join): the replica is in sync at once.
	data := []string{"--save", "", "--appendonly", "no", "--repl-diskless-sync-delay", "0", "--protected-mode", "yes"}
	s.Master = s.start(data...)
	s.Replica = s.start(append(data, "--replicaof", "127.0.0.1", portOf(s.Master))...)
	s.waitFor("replica "+s.Replica+" in sync", func(ctx context.Context) error {
		c := redis.NewClient(&redis.Options{Addr: s.Replica, MaxRetries: -1})
		defer c.Close()
		info, err := c.Info(ctx, "replication").Result()
		if err == nil && !strings.Contains(info, "master_link_status:up") {
			err = errors.New(info)
		}
		return err
	})
	for i := 0; i < 3; i++ {
		s.Sentinels = append(s.Sentinels, s.startSentinel())
	}
	// Each Sentinel must see the master up, its replica, and the two other
	// Sentinels (they find each other through hello messages every 2 s):
	// without them there is no quorum and no leader to fail over.
	for _, addr := range s.Sentinels {
		s.waitFor("sentinel "+addr+" ready", func(ctx context.Context) error {
			c := redis.NewSentinelClient(&redis.Options{Addr: addr, MaxRetries: -1})
			defer c.Close()
			m, err := c.Master(ctx, s.Name).Result()
			if err == nil && (m["flags"] != "master" || m["num-slaves"] != "1" || m["num-other-sentinels"] != "2") {
				err = fmt.Errorf("flags %s, %s replicas, %s other sentinels", m["flags"], m["num-slaves"], m["num-other-sentinels"])
			}
			return err
		})
	}
	return s
}

// URL is the set's address in the redis+sentinel:// form.
func (s *SentinelSet) URL() string {
	return "redis+sentinel://" + strings.Join(s.Sentinels, ",") + "/" + s.Name
}

// StopMaster stops the master the Sentinels name, as an operator does
// (SIGTERM, the same shutdown as the SHUTDOWN command): Redis 7 first
// waits, up to shutdown-timeout, for its replicas to catch up, so no write
// it acknowledged is lost. It returns the stopped master's address once
// the process has exited.
func (s *SentinelSet) StopMaster() string {
	s.t.Helper()
	addr := s.currentMaster()
	if err := s.stop(addr, syscall.SIGTERM); err != nil {
		s.t.Fatalf("redistest: master %s did not shut down cleanly: %v", addr, err)
	}
	return addr
}

// WaitMaster waits until every Sentinel names addr as the master and addr
// says it is one (after a failover: the replica was promoted).
func (s *SentinelSet) WaitMaster(addr string) {
	s.t.Helper()
	for _, sa := range s.Sentinels {
		s.waitFor("sentinel "+sa+" naming "+addr+" master", func(ctx context.Context) error {
			c := redis.NewSentinelClient(&redis.Options{Addr: sa, MaxRetries: -1})
			defer c.Close()
			got, err := c.GetMasterAddrByName(ctx, s.Name).Result()
			if err == nil && (len(got) != 2 || net.JoinHostPort(got[0], got[1]) != addr) {
				err = fmt.Errorf("names %v", got)
			}
			return err
		})
	}
	s.waitFor(addr+" in the master role", func(ctx context.Context) error {
		c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
		defer c.Close()
		info, err := c.Info(ctx, "replication").Result()
		if err == nil && !strings.Contains(info, "role:master") {
			err = errors.New(info)
		}
		return err
	})
}

// start starts a redis-server with args on a free port and waits until
// it answers; it returns its address.
func (s *SentinelSet) start(args ...string) string {
	s.t.Helper()
	port, err := freePort()
	if err != nil {
		s.t.Fatal(err)
	}
	dir := s.t.TempDir()
	args = append([]string{"--bind", "127.0.0.1", "--port", fmt.Sprint(port), "--dir", dir,
		"--logfile", filepath.Join(dir, "redis.log"), "--daemonize", "no"}, args...)
	return s.run(port, dir, args...)
}

// startSentinel writes a Sentinel's configuration (it rewrites the file
// as it learns) and starts it; it returns its address.
func (s *SentinelSet) startSentinel() string {
	s.t.Helper()
	port, err := freePort()
	if err != nil {
		s.t.Fatal(err)
	}
	dir := s.t.TempDir()
	conf := filepath.Join(dir, "sentinel.conf")
	// Failover after 1 s of silence; a failed attempt is retried after
	// twice failover-timeout.
	text := fmt.Sprintf(`bind 127.0.0.1
port %[1]d
dir %[2]s
logfile %[3]s
sentinel resolve-hostnames no
sentinel monitor %[4]s 127.0.0.1 %[5]s 2
sentinel down-after-milliseconds %[4]s 1000
sentinel failover-timeout %[4]s 5000
sentinel parallel-syncs %[4]s 1
`, port, dir, filepath.Join(dir, "redis.log"), s.Name, portOf(s.Master))
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		s.t.Fatal(err)
	}
	return s.run(port, dir, conf, "--sentinel")
}

func (s *SentinelSet) run(port int, dir string, args ...string) string {
	s.t.Helper()
	cmd := exec.Command(s.bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("redistest: %v", err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	s.mu.Lock()
	s.procs[addr] = cmd
	s.logs = append(s.logs, filepath.Join(dir, "redis.log"))
	s.mu.Unlock()
	s.waitFor(addr+" answering", func(ctx context.Context) error {
		c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
		defer c.Close()
		return c.Ping(ctx).Err()
	})
	return addr
}

// currentMaster asks the Sentinels for the master's address.
func (s *SentinelSet) currentMaster() string {
	s.t.Helper()
	var errs []error
	for _, sa := range s.Sentinels {
		c := redis.NewSentinelClient(&redis.Options{Addr: sa, MaxRetries: -1})
		got, err := c.GetMasterAddrByName(context.Background(), s.Name).Result()
		c.Close()
		if err == nil && len(got) == 2 {
			return net.JoinHostPort(got[0], got[1])
		}
		errs = append(errs, fmt.Errorf("%s: %v %v", sa, got, err))
	}
	s.t.Fatalf("redistest: no sentinel names the master: %v", errors.Join(errs...))
	return ""
}

// stop signals the server at addr and waits until it has exited; an
// exit other than a clean one is an error.
func (s *SentinelSet) stop(addr string, sig syscall.Signal) error {
	s.mu.Lock()
	cmd := s.procs[addr]
	delete(s.procs, addr)
	s.mu.Unlock()
	if cmd == nil {
		return fmt.Errorf("%s is not running", addr)
	}
	if err := cmd.Process.Signal(sig); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(sentinelPatience):
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("still running %v after %v", sig, sentinelPatience)
	}
}

// waitFor retries check, each try bounded to a second, until it succeeds;
// after sentinelPatience it fails the test with the last error and the
// end of every server's log.
func (s *SentinelSet) waitFor(what string, check func(context.Context) error) {
	s.t.Helper()
	deadline := time.Now().Add(sentinelPatience)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := check(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("redistest: waited %v for %s: %v\n%s", sentinelPatience, what, err, s.logTails())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// logTails is the last lines of every server's log.
func (s *SentinelSet) logTails() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	for _, f := range s.logs {
		data, _ := os.ReadFile(f)
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		lines = lines[max(0, len(lines)-15):]
		fmt.Fprintf(&b, "--- %s\n%s\n", f, strings.Join(lines, "\n"))
	}
	return b.String()
}

func (s *SentinelSet) killAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for addr, cmd := range s.procs {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		delete(s.procs, addr)
	}
}

func portOf(addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	return port
}
