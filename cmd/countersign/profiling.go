package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime"
)

// pprofDefs: --pprof-listen serves Go's runtime profiles (CPU, heap,
// allocations, goroutines, block and mutex contention) for profiling a
// node under load. Off by default; loopback only, since profiles show
// the program's internals and cost CPU while taken.
func (c *Config) pprofDefs() []flagDef {
	return []flagDef{
		{name: "pprof-listen", env: "COUNTERSIGN_PPROF_LISTEN", str: &c.PprofListen, help: "serve /debug/pprof/ on this loopback address and record block and mutex contention (empty: off)"},
	}
}

func validatePprof(addr string) []error {
	if addr == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return []error{fmt.Errorf("pprof-listen: %v", err)}
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return []error{fmt.Errorf("pprof-listen: %q is not a loopback address", host)}
	}
	return nil
}

// servePprof serves the profiles on --pprof-listen until stop is called.
func (c *Config) servePprof() (stop func(), addr string, err error) {
	if c.PprofListen == "" {
		return func() {}, "", nil
	}
	ln, err := net.Listen("tcp", c.PprofListen)
	if err != nil {
		return nil, "", fmt.Errorf("pprof-listen: %w", err)
	}
	// One blocking event sampled per 10 µs blocked, one contended mutex
	// in 5: enough to see a lock in the tail, cheap enough to leave on.
	runtime.SetBlockProfileRate(10_000)
	runtime.SetMutexProfileFraction(5)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: c.ReadHeaderTimeout}
	go func() { _ = hs.Serve(ln) }()
	return func() {
		_ = hs.Close()
		runtime.SetBlockProfileRate(0)
		runtime.SetMutexProfileFraction(0)
	}, ln.Addr().String(), nil
}
