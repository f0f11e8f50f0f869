package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// freePort asks the kernel for a free loopback port.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// redisProc is the run's own redis-server: one port, one data directory,
// AOF on, restarted on the same data after a kill.
type redisProc struct {
	port  int
	dir   string
	fsync string // appendfsync: everysec | always
	cmd   *exec.Cmd
	log   *os.File
}

func startRedis(dir, fsync string) (*redisProc, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	lf, err := os.Create(filepath.Join(dir, "redis.log"))
	if err != nil {
		return nil, err
	}
	r := &redisProc{port: port, dir: dir, fsync: fsync, log: lf}
	return r, r.start()
}

func (r *redisProc) addr() string { return fmt.Sprintf("127.0.0.1:%d", r.port) }

func (r *redisProc) start() error {
	cmd := exec.Command("redis-server", "--bind", "127.0.0.1", "--port", fmt.Sprint(r.port),
		"--dir", r.dir, "--appendonly", "yes", "--appendfsync", r.fsync, "--save", "",
		"--daemonize", "no", "--protected-mode", "yes")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("redis-server (apt-get install -y redis-server): %w", err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		once := false
		for sc.Scan() {
			fmt.Fprintln(r.log, sc.Text())
			if !once && strings.Contains(sc.Text(), "Ready to accept connections") {
				once = true
				close(ready)
			}
		}
	}()
	go func() { _ = cmd.Wait() }()
	r.cmd = cmd
	select {
	case <-ready:
		return nil
	case <-time.After(30 * time.Second):
		return fmt.Errorf("redis-server on %d not ready in 30 s (see %s)", r.port, r.log.Name())
	}
}

func (r *redisProc) signal(sig syscall.Signal) error { return r.cmd.Process.Signal(sig) }

// kill9 kills Redis without a chance to flush, and waits for the port to free.
func (r *redisProc) kill9() error {
	if err := r.signal(syscall.SIGKILL); err != nil {
		return err
	}
	for i := 0; i < 100; i++ {
		if c, err := net.DialTimeout("tcp", r.addr(), 50*time.Millisecond); err != nil {
			return nil
		} else {
			c.Close()
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

func (r *redisProc) stop() {
	if r.cmd != nil && r.cmd.Process != nil {
		_ = r.cmd.Process.Signal(syscall.SIGCONT)
		_ = r.cmd.Process.Signal(syscall.SIGKILL)
	}
	r.log.Close()
}

// nodeProc is one countersign serve process.
type nodeProc struct {
	name   string
	bin    string
	listen string
	env    []string
	cmd    *exec.Cmd
	log    *os.File
	done   chan struct{}
}

func (n *nodeProc) url() string { return "http://" + n.listen }

func (n *nodeProc) start() error {
	cmd := exec.Command(n.bin, "serve", "--dev")
	cmd.Env = append(os.Environ(), n.env...)
	cmd.Stdout, cmd.Stderr = n.log, n.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	n.cmd = cmd
	done := make(chan struct{})
	n.done = done
	go func() { _ = cmd.Wait(); close(done) }()
	return waitReady(n.url(), 60*time.Second)
}

func (n *nodeProc) kill9() {
	if n.cmd != nil {
		_ = n.cmd.Process.Signal(syscall.SIGKILL)
		<-n.done
	}
}

// waitReady polls /readyz (Redis reachable, rules loaded).
func waitReady(base string, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/readyz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready within %s", base, limit)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// buildBinary builds cmd/countersign into dir.
func buildBinary(dir string) (string, error) {
	bin := filepath.Join(dir, "countersign")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/countersign")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build ./cmd/countersign (run from the repository root): %w", err)
	}
	return bin, nil
}
