package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// --pprof-listen takes loopback addresses only, and serves the profiles
// there (block and mutex included) until stopped.
func TestPprofListen(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:6060", "192.0.2.1:6060", "example.com:6060", "6060"} {
		if _, err := parseConfig([]string{"--pprof-listen", addr}, func(string) string { return "" }, io.Discard); err == nil ||
			!strings.Contains(err.Error(), "pprof-listen") {
			t.Errorf("%s: %v, want a pprof-listen error", addr, err)
		}
	}
	cfg, err := parseConfig([]string{"--pprof-listen", "127.0.0.1:0"}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	stop, addr, err := cfg.servePprof()
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	for _, p := range []string{"/debug/pprof/", "/debug/pprof/mutex?debug=1", "/debug/pprof/block?debug=1"} {
		resp, err := http.Get("http://" + addr + p)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || len(body) == 0 {
			t.Fatalf("%s: %d %s", p, resp.StatusCode, body)
		}
	}
	// Off by default: nothing listens.
	def, err := parseConfig(nil, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if _, addr, err := def.servePprof(); err != nil || addr != "" {
		t.Fatalf("default: %q %v", addr, err)
	}
}
