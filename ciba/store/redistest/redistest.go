// Package redistest starts the Redis servers that tests run against: one
// real redis-server per test binary, on a free loopback port with no
// persistence, and a fresh miniredis per test for fast unit tests.
//
// Tests never use a fixed port or a shared database: every test gets its
// own key prefix on the binary's own server. A missing redis-server fails
// the test with the command that installs it; it is never skipped.
package redistest

import (
	"bufio"
	"context"
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

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

var (
	once    sync.Once
	addr    string
	initErr error
	seq     int
	seqMu   sync.Mutex
)

// Server is a Redis for one test: a client and a key prefix of its own.
type Server struct {
	Client redis.UniversalClient
	Prefix string
	Addr   string
	// Mini is set for miniredis servers (to move its clock).
	Mini *miniredis.Miniredis
}

// Real returns a client of the test binary's real redis-server and a
// prefix unique to the test.
func Real(t testing.TB) *Server {
	t.Helper()
	once.Do(func() { addr, initErr = start() })
	if initErr != nil {
		t.Fatalf("redistest: %v", initErr)
	}
	c := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { c.Close() })
	seqMu.Lock()
	seq++
	n := seq
	seqMu.Unlock()
	return &Server{Client: c, Prefix: fmt.Sprintf("t%d-%d:", os.Getpid(), n), Addr: addr}
}

// Mini returns a fresh miniredis for one test.
func Mini(t testing.TB) *Server {
	t.Helper()
	m := miniredis.RunT(t)
	c := redis.NewClient(&redis.Options{Addr: m.Addr()})
	t.Cleanup(func() { c.Close() })
	return &Server{Client: c, Prefix: "t:", Addr: m.Addr(), Mini: m}
}

// Addr returns the address of the binary's real redis-server, starting it
// when needed (for tests that start whole server nodes).
func Addr(t testing.TB) string {
	t.Helper()
	once.Do(func() { addr, initErr = start() })
	if initErr != nil {
		t.Fatalf("redistest: %v", initErr)
	}
	return addr
}

func start() (string, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return "", fmt.Errorf("redis-server not found: install it with `apt-get install -y redis-server` (tests need a real Redis)")
	}
	dir, err := os.MkdirTemp("", "redistest")
	if err != nil {
		return "", err
	}
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			return "", err
		}
		cmd := exec.Command(bin, "--bind", "127.0.0.1", "--port", fmt.Sprint(port), "--save", "",
			"--appendonly", "no", "--dir", dir, "--daemonize", "no", "--protected-mode", "yes")
		// Linux: the server dies with the test binary even when Stop is not reached.
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		out, err := cmd.StdoutPipe()
		if err != nil {
			return "", err
		}
		if err := cmd.Start(); err != nil {
			return "", err
		}
		ready := make(chan bool, 1)
		go func() {
			sc := bufio.NewScanner(out)
			ok := false
			for sc.Scan() {
				if !ok && strings.Contains(sc.Text(), "Ready to accept connections") {
					ok = true
					ready <- true
				}
			}
			if !ok {
				ready <- false
			}
		}()
		select {
		case ok := <-ready:
			if !ok {
				continue // the port was taken between freePort and bind
			}
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			continue
		}
		a := fmt.Sprintf("127.0.0.1:%d", port)
		// The server dies with the test binary: it watches its parent.
		go watchParent(cmd)
		c := redis.NewClient(&redis.Options{Addr: a})
		defer c.Close()
		if err := c.Ping(context.Background()).Err(); err != nil {
			return "", err
		}
		_ = os.WriteFile(filepath.Join(dir, "pid"), []byte(fmt.Sprint(cmd.Process.Pid)), 0o600)
		return a, nil
	}
	return "", fmt.Errorf("could not start redis-server on a free port")
}

// watchParent keeps a reference to the server process; the OS reaps it
// when the test binary exits because Pdeathsig is not portable, so the
// test binary's TestMain calls Stop.
func watchParent(cmd *exec.Cmd) {
	procMu.Lock()
	proc = cmd
	procMu.Unlock()
	_ = cmd.Wait()
}

var (
	procMu sync.Mutex
	proc   *exec.Cmd
)

// Stop ends the binary's redis-server, if one was started. Call it from
// TestMain after m.Run.
func Stop() {
	procMu.Lock()
	defer procMu.Unlock()
	if proc != nil && proc.Process != nil {
		_ = proc.Process.Kill()
	}
}

// Main is a TestMain body: run the tests, stop the server, exit.
func Main(m *testing.M) {
	code := m.Run()
	Stop()
	os.Exit(code)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
