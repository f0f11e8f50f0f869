package redistest

import (
	"context"
	"fmt"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Proc is a redis-server of one test's own, for tests of what the server
// does while Redis is down or stalled: it can be killed and started again
// on the same port with its data (append-only file, fsync always), or
// frozen (SIGSTOP) and thawed (SIGCONT).
type Proc struct {
	Addr string
	t    testing.TB
	bin  string
	dir  string
	port int

	mu  sync.Mutex
	cmd *exec.Cmd
}

// Own starts a redis-server for this test only; it ends with the test.
func Own(t testing.TB) *Proc {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redistest: redis-server not found: install it with `apt-get install -y redis-server`")
	}
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	p := &Proc{t: t, bin: bin, dir: t.TempDir(), port: port, Addr: fmt.Sprintf("127.0.0.1:%d", port)}
	p.Start()
	t.Cleanup(func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.kill()
	})
	return p
}

// Start starts the server (again) on its port and waits until it answers.
func (p *Proc) Start() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		p.t.Fatalf("redistest: %s is already running", p.Addr)
	}
	cmd := exec.Command(p.bin, "--bind", "127.0.0.1", "--port", fmt.Sprint(p.port), "--save", "",
		"--appendonly", "yes", "--appendfsync", "always", "--dir", p.dir, "--daemonize", "no", "--protected-mode", "yes")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("redistest: %v", err)
	}
	p.cmd = cmd
	c := redis.NewClient(&redis.Options{Addr: p.Addr, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for c.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			p.t.Fatalf("redistest: redis-server on %s did not start", p.Addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop kills the server (SIGKILL): connections are refused until Start,
// which finds every write it acknowledged.
func (p *Proc) Stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.kill()
}

// Pause freezes the server (SIGSTOP): connections are accepted by the
// kernel and commands are sent, but nothing answers until Resume.
func (p *Proc) Pause() { p.signal(syscall.SIGSTOP) }

// Resume thaws a paused server (SIGCONT); it then runs what it was sent.
func (p *Proc) Resume() { p.signal(syscall.SIGCONT) }

func (p *Proc) signal(sig syscall.Signal) {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		p.t.Fatalf("redistest: %s is not running", p.Addr)
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("redistest: %v", err)
	}
}

func (p *Proc) kill() {
	if p.cmd == nil {
		return
	}
	// A paused process takes SIGKILL too.
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
	p.cmd = nil
}
