package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/countersign/countersign/mobile-stub/phone"
)

// nodeDir is the Node project that drives the server with openid-client.
var nodeDir = filepath.Join("..", "..", "interop", "node")

// TestOpenIDClientInterop runs interop/node/ciba.test.mjs: openid-client 6
// (a third-party client that refuses what the specs refuse) through CIBA
// poll and ping, client_secret_basic, client_secret_post, private_key_jwt,
// a signed request object and DPoP, introspection and revocation, with
// every token verified by jose.
func TestOpenIDClientInterop(t *testing.T) {
	nodeBin := nodeModules(t)
	tn := startNode(t, func(c *Config) { c.DPoPNonce = true })
	// openid-client and jose check iat, exp and DPoP proofs with the real clock.
	realTime(tn)
	tn.user(map[string]any{"id": "alice", "email": "alice@example.com",
		"attributes": map[string]any{"spending_limit": 1000, "timezone": "UTC"}})
	ph := tn.enrollPhone("alice", "Pixel")
	key := newAgentKey(t)
	pingPort := freePort(t)
	agent := map[string]any{"trust_tier": "standard", "owner": "acme"}
	clients := map[string]map[string]any{
		"basic": {"client_id": "node-basic", "client_name": "Node basic", "agent": agent},
		"post":  {"client_id": "node-post", "token_endpoint_auth_method": "client_secret_post", "agent": agent},
		"jwt": {"client_id": "node-jwt", "token_endpoint_auth_method": "private_key_jwt", "jwks": key.jwks(),
			"backchannel_authentication_request_signing_alg": "ES256", "agent": agent},
		"dpop": {"client_id": "node-dpop", "dpop_bound_access_tokens": true, "agent": agent},
		"rs":   {"client_id": "node-rs", "resource_server": true},
		"ping": {"client_id": "node-ping", "backchannel_token_delivery_mode": "ping", "agent": agent,
			"backchannel_client_notification_endpoint": "http://127.0.0.1:" + strconv.Itoa(pingPort) + "/cb"},
	}
	env := map[string]any{"issuer": tn.URL, "user": "alice", "phone": approver(t, ph)}
	registered := map[string]any{}
	for name, meta := range clients {
		id, secret := tn.client(meta)
		registered[name] = map[string]any{"id": id, "secret": secret}
	}
	registered["jwt"] = map[string]any{"id": "node-jwt", "key": key.privateJWK()}
	registered["ping"].(map[string]any)["port"] = pingPort
	env["clients"] = registered
	b, _ := json.Marshal(env)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, nodeBin, "--test", "--test-reporter=spec", "ciba.test.mjs")
	cmd.Dir = nodeDir
	cmd.Env = append(os.Environ(), "COUNTERSIGN_INTEROP="+string(b), "NO_COLOR=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("openid-client against the server: %v\n%s", err, out)
	}
	t.Logf("node --test:\n%s", out)
}

// nodeModules returns the node binary once interop/node has its packages:
// it runs `npm ci` when they are missing and npm is there, and fails with
// the command to run otherwise (a missing client is a failure, not a skip).
func nodeModules(t *testing.T) string {
	t.Helper()
	const fix = "install Node.js 20+ and npm, then run `npm ci --prefix interop/node` (.ci/run does both)"
	nodeBin, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node not found: %s", fix)
	}
	v, err := exec.Command(nodeBin, "-p", "process.versions.node.split('.')[0]").Output()
	if major, _ := strconv.Atoi(strings.TrimSpace(string(v))); err != nil || major < 20 {
		t.Fatalf("node %s is too old (openid-client 6 needs 20+): %s", strings.TrimSpace(string(v)), fix)
	}
	installed := func() bool {
		for _, p := range []string{"openid-client", "jose"} {
			if _, err := os.Stat(filepath.Join(nodeDir, "node_modules", p, "package.json")); err != nil {
				return false
			}
		}
		return true
	}
	if installed() {
		return nodeBin
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Fatalf("interop/node/node_modules is missing and npm is not installed: %s", fix)
	}
	out, err := exec.Command(npm, "ci", "--prefix", nodeDir, "--no-audit", "--no-fund").CombinedOutput()
	if err != nil || !installed() {
		t.Fatalf("interop/node/node_modules is missing and `npm ci` failed (%v): %s\n%s", err, fix, out)
	}
	return nodeBin
}

// approver is the user's hand on the stub phone: POST /approve?id=X waits
// for the push of request X and approves it with the device key.
func approver(t *testing.T, ph *phone.Phone) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.URL.Query().Get("id")
		if r.Method != "POST" || r.URL.Path != "/approve" || id == "" {
			http.Error(w, "POST /approve?id=", http.StatusBadRequest)
			return
		}
		if err := approvePushed(r.Context(), ph, id); err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func approvePushed(ctx context.Context, ph *phone.Phone, id string) error {
	timeout := time.After(10 * time.Second)
	for {
		select {
		case push := <-ph.Pushes():
			if push.ID == id {
				return ph.Decide(ctx, id, "approve")
			}
		case <-timeout:
			return errors.New("no push for " + id)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// freePort returns a loopback port that was free a moment ago, for a
// listener another process opens.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// privateJWK is the key as a private JWK (RFC 7518 §6.2.2), for a client
// in another language.
func (k *agentKey) privateJWK() map[string]any {
	pub := k.jwks()["keys"].([]any)[0].(map[string]any)
	d, err := k.priv.Bytes()
	if err != nil {
		panic(fmt.Sprintf("P-256 key: %v", err))
	}
	pub["d"] = base64.RawURLEncoding.EncodeToString(d)
	return pub
}
