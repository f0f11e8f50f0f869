package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/countersign/countersign/mobile-stub/phone"
)

// These tests run the gateway and the example upstream as real child
// processes (this test binary re-executed as `countersign`), against a
// real server node on a real Redis, with the stub phone deciding.

const mcpHelperEnv = "COUNTERSIGN_MCP_TEST_HELPER"

// TestMCPHelperProcess is not a test: in a child started by helperArgv it
// is `countersign` with the arguments after "--".
func TestMCPHelperProcess(t *testing.T) {
	if os.Getenv(mcpHelperEnv) != "1" {
		return
	}
	args := os.Args
	for i, a := range args {
		if a == "--" {
			args = args[i+1:]
			break
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	code := run(ctx, args, os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func helperArgv(args ...string) []string {
	return append([]string{os.Args[0], "-test.run=^TestMCPHelperProcess$", "--"}, args...)
}

func helperCmd(env []string, args ...string) *exec.Cmd {
	argv := helperArgv(args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(append(os.Environ(), mcpHelperEnv+"=1"), env...)
	return cmd
}

// shellJoin quotes argv for --upstream-command.
func shellJoin(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

// logBuffer collects a child's stderr (the gateway's JSON log lines).
type logBuffer struct {
	t  testing.TB
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.b.Write(p)
	l.mu.Unlock()
	l.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// outcomes returns the gateway's "mcp tool call" lines.
func (l *logBuffer) outcomes() []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(l.b.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "mcp tool call" {
			out = append(out, m)
		}
	}
	return out
}

// waitOutcome waits for the n-th outcome line (1-based).
func (l *logBuffer) waitOutcome(t *testing.T, n int) map[string]any {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if o := l.outcomes(); len(o) >= n {
			return o[n-1]
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no outcome line %d in the gateway's log", n)
	return nil
}

type mcpFixture struct {
	tn            *testNode
	id, secret    string
	phone         *phone.Phone
	calls         string // the upstream's calls file
	log           *logBuffer
	gatewayArgs   []string
	gatewayEnv    []string
	upstreamURL   string
	progressMu    sync.Mutex
	progressTexts []string
}

// newMCPFixture starts a node whose clock follows real time (a little
// faster, so that a poll at the interval is never early), registers the
// gateway as a poll client acting for alice, and enrolls her phone.
func newMCPFixture(t *testing.T, mutate ...func(*Config)) *mcpFixture {
	tn := startNode(t, func(c *Config) {
		c.PollInterval = 1
		for _, m := range mutate {
			m(c)
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(50 * time.Millisecond):
				tn.clock.Advance(60 * time.Millisecond)
			}
		}
	}()
	id, secret := tn.client(map[string]any{"client_id": "mcp-gateway", "client_name": "Coding agent (via MCP gateway)",
		"agent": map[string]any{"trust_tier": "standard", "owner": "acme"}})
	tn.user(map[string]any{"id": "alice", "email": "alice@example.com", "attributes": map[string]any{"timezone": "UTC"}})
	f := &mcpFixture{tn: tn, id: id, secret: secret, phone: tn.enrollPhone("alice", "Pixel"),
		calls: filepath.Join(t.TempDir(), "calls"), log: &logBuffer{t: t}}
	f.gatewayArgs = []string{"mcp-gateway", "--issuer", tn.URL, "--client-id", id, "--user", "alice", "--expiry", "60s"}
	f.gatewayEnv = []string{"COUNTERSIGN_CLIENT_SECRET=" + secret}
	return f
}

func (f *mcpFixture) stdioUpstream() {
	f.gatewayArgs = append(f.gatewayArgs, "--upstream-command", shellJoin(helperArgv("mcp-example-server", "--calls-file", f.calls)))
}

// httpUpstream starts the example server as a process on streamable HTTP,
// guarded: a tools/call needs a token that covers it.
func (f *mcpFixture) httpUpstream(t *testing.T) {
	addr := freeAddr(t)
	f.upstreamURL = "http://" + addr + "/mcp"
	cmd := helperCmd(nil, "mcp-example-server", "--listen", addr, "--issuer", f.tn.URL, "--calls-file", f.calls)
	cmd.Stderr = &logBuffer{t: t}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() })
	waitListening(t, addr)
	f.gatewayArgs = append(f.gatewayArgs, "--upstream-url", f.upstreamURL)
}

// gatewayTransport starts the gateway: over stdio, or with listen set as
// its own process serving streamable HTTP.
func (f *mcpFixture) gatewayTransport(t *testing.T, overHTTP bool) mcp.Transport {
	args := f.gatewayArgs
	if !overHTTP {
		cmd := helperCmd(f.gatewayEnv, args...)
		cmd.Stderr = f.log
		return &mcp.CommandTransport{Command: cmd, TerminateDuration: time.Second}
	}
	addr := freeAddr(t)
	cmd := helperCmd(f.gatewayEnv, append(args, "--listen", addr)...)
	cmd.Stderr = f.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() })
	waitListening(t, addr)
	return &mcp.StreamableClientTransport{Endpoint: "http://" + addr + "/mcp", MaxRetries: -1}
}

// connect is an agent host: an MCP client of the gateway.
func (f *mcpFixture) connect(t *testing.T, overHTTP bool) *mcp.ClientSession {
	c := mcp.NewClient(&mcp.Implementation{Name: "test-host", Version: "1"}, &mcp.ClientOptions{
		ProgressNotificationHandler: func(_ context.Context, r *mcp.ProgressNotificationClientRequest) {
			f.progressMu.Lock()
			f.progressTexts = append(f.progressTexts, r.Params.Message)
			f.progressMu.Unlock()
		},
	})
	cs, err := c.Connect(context.Background(), f.gatewayTransport(t, overHTTP), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

func (f *mcpFixture) progress() []string {
	f.progressMu.Lock()
	defer f.progressMu.Unlock()
	return append([]string(nil), f.progressTexts...)
}

// ran returns how many times tool ran upstream.
func (f *mcpFixture) ran(t *testing.T, tool string) int {
	b, err := os.ReadFile(f.calls)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		if l == tool {
			n++
		}
	}
	return n
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func waitListening(t *testing.T, addr string) {
	for range 200 {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("nothing listens on %s", addr)
}

func resultText(t *testing.T, r *mcp.CallToolResult) string {
	t.Helper()
	var parts []string
	for _, c := range r.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			parts = append(parts, tc.Text)
		}
	}
	return strings.Join(parts, "\n")
}

// nextPush waits for the phone's next approval request.
func nextPush(t *testing.T, p *phone.Phone) phone.Push {
	t.Helper()
	select {
	case push := <-p.Pushes():
		return push
	case <-time.After(20 * time.Second):
		t.Fatal("no push reached the phone")
	}
	return phone.Push{}
}

// callAsync calls a tool in the background.
func callAsync(ctx context.Context, cs *mcp.ClientSession, params *mcp.CallToolParams) <-chan callResult {
	ch := make(chan callResult, 1)
	go func() {
		r, err := cs.CallTool(ctx, params)
		ch <- callResult{r, err}
	}()
	return ch
}

type callResult struct {
	res *mcp.CallToolResult
	err error
}

func wait(t *testing.T, ch <-chan callResult) *mcp.CallToolResult {
	t.Helper()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("tools/call: %v", r.err)
		}
		return r.res
	case <-time.After(30 * time.Second):
		t.Fatal("tools/call did not return")
	}
	return nil
}

func testMCPGateway(t *testing.T, upstreamHTTP, downstreamHTTP bool) {
	f := newMCPFixture(t)
	if upstreamHTTP {
		f.httpUpstream(t)
	} else {
		f.stdioUpstream()
	}
	cs := f.connect(t, downstreamHTTP)
	ctx := context.Background()

	// Discovery advertises the type (RFC 9396 §10).
	d := f.tn.do(mustReq(t, "GET", f.tn.URL+"/.well-known/openid-configuration", ""))
	if types := fmt.Sprint(d.Body["authorization_details_types_supported"]); !strings.Contains(types, "mcp_tool_call") {
		t.Fatalf("authorization_details_types_supported: %s", types)
	}

	// initialize and tools/list pass through: the upstream's name, its
	// tools with their schemas and annotations.
	if info := cs.InitializeResult().ServerInfo; info.Name != "notes" || info.Version != "1.0.0" {
		t.Fatalf("serverInfo: %+v", info)
	}
	tools, err := cs.ListTools(ctx, nil)
	if err != nil || len(tools.Tools) != 2 {
		t.Fatalf("tools/list: %v %+v", err, tools)
	}
	byName := map[string]*mcp.Tool{}
	for _, tl := range tools.Tools {
		byName[tl.Name] = tl
	}
	del := byName["delete_note"]
	if del == nil || del.Annotations == nil || del.Annotations.DestructiveHint == nil || !*del.Annotations.DestructiveHint ||
		!strings.Contains(fmt.Sprint(del.InputSchema), "id") || byName["read_notes"] == nil || !byName["read_notes"].Annotations.ReadOnlyHint {
		t.Fatalf("mirrored tools: %+v %+v", del, byName["read_notes"])
	}

	// Resources and prompts pass through, ungated.
	res, err := cs.ListResources(ctx, nil)
	if err != nil || len(res.Resources) != 1 || res.Resources[0].URI != "notes://all" {
		t.Fatalf("resources/list: %v %+v", err, res)
	}
	read, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "notes://all"})
	if err != nil || len(read.Contents) != 1 || !strings.HasPrefix(read.Contents[0].Text, "n1: Buy milk\n") {
		t.Fatalf("resources/read: %v %+v", err, read)
	}
	pr, err := cs.GetPrompt(ctx, &mcp.GetPromptParams{Name: "summarize_notes"})
	if err != nil || len(pr.Messages) != 1 || !strings.Contains(pr.Messages[0].Content.(*mcp.TextContent).Text, "n2: Call the dentist") {
		t.Fatalf("prompts/get: %v %+v", err, pr)
	}

	// A read-only tool runs at once, by policy, without the phone.
	r, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "read_notes", Arguments: map[string]any{}})
	if err != nil || r.IsError || !strings.Contains(resultText(t, r), "n1: Buy milk") {
		t.Fatalf("read_notes: %v %+v", err, r)
	}
	if o := f.log.waitOutcome(t, 1); o["outcome"] != "forwarded" || o["approval"] != "policy" || o["tool"] != "read_notes" || o["server"] != "notes" {
		t.Fatalf("read outcome: %v", o)
	}
	if f.ran(t, "read_notes") != 1 {
		t.Fatal("read_notes did not run exactly once")
	}
	if pending, _ := f.phone.Pending(ctx); len(pending) != 0 {
		t.Fatalf("the read went to the phone: %+v", pending)
	}

	// A destructive tool waits for the phone, with progress, and runs
	// once after the approval.
	params := &mcp.CallToolParams{Name: "delete_note", Arguments: map[string]any{"id": "n1"}}
	params.SetProgressToken("del-1")
	ch := callAsync(ctx, cs, params)
	push := nextPush(t, f.phone)
	if push.BindingMessage != "Run delete_note on notes" || push.Summary != "Run delete_note on notes" || push.Risk.Level != "high" || push.Agent.ClientID != f.id {
		t.Fatalf("push: %+v", push)
	}
	view := wantMCPDetail(t, f, push.ID, "delete_note", `{"id":"n1"}`)
	if upstreamHTTP && !strings.Contains(string(view.AuthorizationDetails), f.upstreamURL) {
		t.Fatalf("the entry does not name the upstream URL: %s", view.AuthorizationDetails)
	}
	for deadline := time.Now().Add(20 * time.Second); len(f.progress()) == 0; {
		if time.Now().After(deadline) {
			t.Fatal("no progress notification while waiting")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if p := f.progress()[0]; !strings.Contains(p, "Run delete_note on notes") || !strings.Contains(p, "left") {
		t.Fatalf("progress: %q", p)
	}
	if f.ran(t, "delete_note") != 0 {
		t.Fatal("delete_note ran before the approval")
	}
	if err := f.phone.Decide(ctx, push.ID, "approve"); err != nil {
		t.Fatal(err)
	}
	if r := wait(t, ch); r.IsError || resultText(t, r) != "deleted n1" {
		t.Fatalf("delete after approval: %+v %q", r, resultText(t, r))
	}
	if o := f.log.waitOutcome(t, 2); o["outcome"] != "forwarded" || o["approval"] != "device" || o["auth_req_id"] != push.ID {
		t.Fatalf("delete outcome: %v", o)
	}
	if f.ran(t, "delete_note") != 1 {
		t.Fatal("delete_note did not run exactly once")
	}
	// The server audited the decision with the tool and the server.
	a := f.tn.admin("GET", "/admin/audit?request="+push.ID, nil)
	if a.Status != 200 || !strings.Contains(a.Raw, `"tool":"delete_note"`) || !strings.Contains(a.Raw, `"name":"notes"`) {
		t.Fatalf("audit: %d %s", a.Status, a.Raw)
	}
}

// wantMCPDetail checks the phone's view of request id: one mcp_tool_call
// entry for tool with args and the tool's annotations.
func wantMCPDetail(t *testing.T, f *mcpFixture, id, tool, args string) phone.Request {
	t.Helper()
	list, err := f.phone.Pending(context.Background())
	if err != nil || len(list) != 1 || list[0].ID != id {
		t.Fatalf("pending: %+v %v", list, err)
	}
	var ds []struct {
		Type        string          `json:"type"`
		Tool        string          `json:"tool"`
		Arguments   json.RawMessage `json:"arguments"`
		Server      map[string]any  `json:"server"`
		Annotations map[string]any  `json:"annotations"`
	}
	if err := json.Unmarshal(list[0].AuthorizationDetails, &ds); err != nil || len(ds) != 1 {
		t.Fatalf("details: %s %v", list[0].AuthorizationDetails, err)
	}
	d := ds[0]
	if d.Type != "mcp_tool_call" || d.Tool != tool || string(d.Arguments) != args || d.Server["name"] != "notes" ||
		d.Annotations["destructiveHint"] != true || d.Annotations["readOnlyHint"] != false || d.Annotations["title"] != "Delete a note" {
		t.Fatalf("detail: %+v", d)
	}
	return list[0]
}

func TestMCPGatewayStdio(t *testing.T) { testMCPGateway(t, false, false) }

func TestMCPGatewayStreamableHTTP(t *testing.T) { testMCPGateway(t, true, true) }

// A denied call and an expired one answer with a tool error and never
// reach the upstream.
func TestMCPGatewayDeniedOrExpiredNeverRuns(t *testing.T) {
	f := newMCPFixture(t)
	f.stdioUpstream()
	f.gatewayArgs = append(f.gatewayArgs, "--expiry", "3s")
	cs := f.connect(t, false)
	ctx := context.Background()

	ch := callAsync(ctx, cs, &mcp.CallToolParams{Name: "delete_note", Arguments: map[string]any{"id": "n2"}})
	push := nextPush(t, f.phone)
	if err := f.phone.Decide(ctx, push.ID, "deny"); err != nil {
		t.Fatal(err)
	}
	r := wait(t, ch)
	if !r.IsError || !strings.Contains(resultText(t, r), "denied on the user's phone") {
		t.Fatalf("denied call: %+v %q", r, resultText(t, r))
	}
	if o := f.log.waitOutcome(t, 1); o["outcome"] != "denied" {
		t.Fatalf("denied outcome: %v", o)
	}

	// Nobody decides: the request expires (3 s asked) and the call ends.
	ch = callAsync(ctx, cs, &mcp.CallToolParams{Name: "delete_note", Arguments: map[string]any{"id": "n3"}})
	nextPush(t, f.phone)
	r = wait(t, ch)
	if !r.IsError || !strings.Contains(resultText(t, r), "No decision in 3s") {
		t.Fatalf("expired call: %+v %q", r, resultText(t, r))
	}
	if o := f.log.waitOutcome(t, 2); o["outcome"] != "expired" {
		t.Fatalf("expired outcome: %v", o)
	}
	if f.ran(t, "delete_note") != 0 {
		t.Fatal("a denied or expired delete_note reached the upstream")
	}
}

// A cancelled wait stops waiting and is never forwarded, even when the
// user approves afterwards.
func TestMCPGatewayCancelledWaitNeverRuns(t *testing.T) {
	f := newMCPFixture(t)
	f.stdioUpstream()
	cs := f.connect(t, false)
	ctx, cancel := context.WithCancel(context.Background())
	ch := callAsync(ctx, cs, &mcp.CallToolParams{Name: "delete_note", Arguments: map[string]any{"id": "n1"}})
	push := nextPush(t, f.phone)
	cancel() // the SDK sends notifications/cancelled
	if r := <-ch; r.err == nil {
		t.Fatalf("a cancelled call returned %+v", r.res)
	}
	if o := f.log.waitOutcome(t, 1); o["outcome"] != "cancelled" {
		t.Fatalf("cancelled outcome: %v", o)
	}
	if err := f.phone.Decide(context.Background(), push.ID, "approve"); err != nil {
		t.Fatal(err)
	}
	// A later call goes through the same gateway and upstream: had the
	// cancelled one been forwarded, it would have run before this one.
	if _, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "read_notes"}); err != nil {
		t.Fatal(err)
	}
	if f.ran(t, "read_notes") != 1 || f.ran(t, "delete_note") != 0 {
		t.Fatalf("calls: read %d delete %d", f.ran(t, "read_notes"), f.ran(t, "delete_note"))
	}
}

// rawSession speaks JSON-RPC over a connection, so a test can send the
// same request id twice (the SDK's client numbers its own requests).
type rawSession struct {
	t    *testing.T
	conn mcp.Connection
}

func openRaw(t *testing.T, tr mcp.Transport) *rawSession {
	conn, err := tr.Connect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	s := &rawSession{t: t, conn: conn}
	s.call(1, "initialize", map[string]any{"protocolVersion": "2025-06-18", "capabilities": map[string]any{},
		"clientInfo": map[string]any{"name": "raw", "version": "1"}})
	s.send(&jsonrpc.Request{Method: "notifications/initialized", Params: json.RawMessage(`{}`)})
	return s
}

func (s *rawSession) send(m jsonrpc.Message) {
	if err := s.conn.Write(context.Background(), m); err != nil {
		s.t.Fatal(err)
	}
}

// call sends a request and returns its response's result.
func (s *rawSession) call(id int64, method string, params any) json.RawMessage {
	s.t.Helper()
	jid, _ := jsonrpc.MakeID(float64(id))
	p, _ := json.Marshal(params)
	s.send(&jsonrpc.Request{ID: jid, Method: method, Params: p})
	for {
		m, err := s.conn.Read(context.Background())
		if err != nil {
			s.t.Fatal(err)
		}
		if r, ok := m.(*jsonrpc.Response); ok && r.ID == jid {
			if r.Error != nil {
				s.t.Fatalf("%s: %v", method, r.Error)
			}
			return r.Result
		}
	}
}

// A retry of the same JSON-RPC request gets the same answer and does not
// run the tool again; another request id is another call.
func TestMCPGatewayRetryDoesNotRunTwice(t *testing.T) {
	for _, overHTTP := range []bool{false, true} {
		t.Run(map[bool]string{false: "stdio", true: "http"}[overHTTP], func(t *testing.T) {
			f := newMCPFixture(t)
			f.stdioUpstream()
			s := openRaw(t, f.gatewayTransport(t, overHTTP))
			args := map[string]any{"name": "delete_note", "arguments": map[string]any{"id": "n2"}}
			done := make(chan json.RawMessage, 1)
			go func() { done <- s.call(7, "tools/call", args) }()
			push := nextPush(t, f.phone)
			if err := f.phone.Decide(context.Background(), push.ID, "approve"); err != nil {
				t.Fatal(err)
			}
			first := <-done
			if !strings.Contains(string(first), "deleted n2") {
				t.Fatalf("first answer: %s", first)
			}
			again := s.call(7, "tools/call", args)
			if string(again) != string(first) {
				t.Fatalf("retry answered %s, first %s", again, first)
			}
			if o := f.log.waitOutcome(t, 2); o["outcome"] != "replayed" || o["request_id"] != "int64:7" {
				t.Fatalf("retry outcome: %v", o)
			}
			if n := f.ran(t, "delete_note"); n != 1 {
				t.Fatalf("delete_note ran %d times", n)
			}
			if pending, _ := f.phone.Pending(context.Background()); len(pending) != 0 {
				t.Fatalf("the retry asked the phone again: %+v", pending)
			}
		})
	}
}

// The upstream's guard refuses a tools/call without a token that covers
// it: the gateway is not a way around it.
func TestMCPUpstreamGuardNeedsToken(t *testing.T) {
	f := newMCPFixture(t)
	f.httpUpstream(t)
	body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_note","arguments":{"id":"n1"}}}`
	req, _ := http.NewRequest("POST", f.upstreamURL, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	r := f.tn.do(req)
	if r.Status != 401 || !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Fatalf("no token: %d %v %s", r.Status, r.Header, r.Raw)
	}
	if f.ran(t, "delete_note") != 0 {
		t.Fatal("delete_note ran without a token")
	}
}

// The phone app shows an MCP tool call readably: the tool, its server, its
// arguments one by one with long values folded, and agent-supplied text
// isolated; the approval it signs covers the entry (ad_hash).
func TestBrowserPhoneShowsMCPToolCall(t *testing.T) {
	tn := startNode(t, nil)
	mountApp(tn)
	realTime(tn)
	id, secret := setup(t, tn)
	p := openBrowser(t, tn)
	p.enroll("alice", "Test phone")
	long := strings.Repeat("lorem ipsum ", 20)
	details, _ := json.Marshal([]any{map[string]any{"type": "mcp_tool_call",
		"server":    map[string]any{"name": "notes", "command": "notes-server --db /tmp/notes"},
		"tool":      "delete_note",
		"arguments": map[string]any{"id": "n1", "reason": "שלום world", "body": long},
		"annotations": map[string]any{"readOnlyHint": false, "destructiveHint": true, "idempotentHint": true,
			"openWorldHint": false, "title": "Delete a note"}}})
	r := tn.post("/bc-authorize", id, secret, url.Values{"scope": {"openid"}, "login_hint": {"alice"},
		"binding_message": {"Run delete_note on notes"}, "authorization_details": {string(details)}})
	if r.Status != 200 {
		t.Fatalf("bc-authorize: %d %s", r.Status, r.Raw)
	}
	authReqID := r.str("auth_req_id")
	p.go2("#/requests/" + authReqID)
	p.wait(`document.querySelector("dd.mcp-tool") !== null`)
	if s := p.text("h1"); s != "Trip planner asks: Run delete_note on notes" {
		t.Fatalf("title: %q", s)
	}
	if s := p.text("dd.mcp-tool"); s != "delete_note (Delete a note)" {
		t.Fatalf("tool: %q", s)
	}
	if s := p.text("dd.mcp-server"); s != "notes · notes-server --db /tmp/notes" {
		t.Fatalf("server: %q", s)
	}
	var args []string
	p.eval(`[...document.querySelectorAll("dl.mcp-args > dt")].map(dt => dt.textContent + "=" +
		(dt.nextElementSibling.querySelector("details") ? "folded" : dt.nextElementSibling.textContent))`, &args)
	if strings.Join(args, ";") != "body=folded;id=n1;reason=שלום world" {
		t.Fatalf("arguments: %q", args)
	}
	var isolated int
	p.eval(`document.querySelectorAll("dd.mcp-args bdi[dir=auto]").length`, &isolated)
	if isolated < 6 {
		t.Fatalf("%d isolated argument texts", isolated)
	}
	p.do(chromedp.Click(chromedp.ID("approve")))
	p.wait(`document.querySelector("#request-status")?.dataset.status === "approved"`)
	tok := tn.post("/token", id, secret, url.Values{"grant_type": {"urn:openid:params:grant-type:ciba"}, "auth_req_id": {authReqID}})
	if tok.Status != 200 || !strings.Contains(tok.Raw, `"tool":"delete_note"`) {
		t.Fatalf("token after approval in the page: %d %s", tok.Status, tok.Raw)
	}
}

func TestDemoMCPReadPassesDeleteWaitsForThePhone(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, errOut syncBuffer
	code := run(ctx, []string{"demo", "--mcp", "--listen", "127.0.0.1:0"}, func(string) string { return "" }, &out, &errOut)
	text := out.String()
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, text, errOut.String())
	}
	for _, want := range []string{
		"5. The agent reads the notes (read-only tool: the rules approve it at once)\n   host: tools/call read_notes {}\n" +
			"   ✓ result (isError false): n1: Buy milk; n2: Call the dentist; n3: Quarterly report due Friday\n",
		`phone: notified (Run delete_note on notes), approved "Run delete_note on notes" with its device key`,
		"   ✓ result (isError false): deleted n1\n",
		"Done: the read ran at once; the delete ran once, after the phone approved.",
	} {
		if !strings.Contains(text, want) {
			t.Fatalf("demo output lacks %q\n%s", want, text)
		}
	}
	if !strings.Contains(errOut.String(), `"outcome":"forwarded","tool":"delete_note","server":"notes"`) {
		t.Fatalf("no outcome line for the delete:\n%s", errOut.String())
	}
}

// A gateway registered in ping mode waits for the server's ping
// (CIBA Core §10.2) at --ping-listen before it fetches the token.
func TestMCPGatewayPingMode(t *testing.T) {
	f := newMCPFixture(t)
	pingAddr := freeAddr(t)
	id, secret := f.tn.client(map[string]any{"client_id": "mcp-gateway-ping", "client_name": "Ping gateway",
		"backchannel_token_delivery_mode":          "ping",
		"backchannel_client_notification_endpoint": "http://" + pingAddr + "/ciba/ping",
		"agent": map[string]any{"trust_tier": "standard", "owner": "acme"}})
	f.gatewayArgs = []string{"mcp-gateway", "--issuer", f.tn.URL, "--client-id", id, "--user", "alice", "--ping-listen", pingAddr}
	f.gatewayEnv = []string{"COUNTERSIGN_CLIENT_SECRET=" + secret}
	f.stdioUpstream()
	cs := f.connect(t, false)
	ch := callAsync(context.Background(), cs, &mcp.CallToolParams{Name: "delete_note", Arguments: map[string]any{"id": "n3"}})
	push := nextPush(t, f.phone)
	if err := f.phone.Decide(context.Background(), push.ID, "approve"); err != nil {
		t.Fatal(err)
	}
	if r := wait(t, ch); r.IsError || resultText(t, r) != "deleted n3" {
		t.Fatalf("delete in ping mode: %+v", r)
	}
	if o := f.log.waitOutcome(t, 1); o["outcome"] != "forwarded" || o["approval"] != "device" {
		t.Fatalf("outcome: %v", o)
	}
	if f.ran(t, "delete_note") != 1 {
		t.Fatal("delete_note did not run exactly once")
	}
}

// A call the rules deny outright comes back at once as a tool error that
// names the rule, and never reaches the upstream.
func TestMCPGatewayPolicyDenialNamesTheRule(t *testing.T) {
	f := newMCPFixture(t)
	ruleset := `format: countersign/v1
name: no-deletes
thresholds: {medium: 30, high: 60}
rules:
  - id: no-note-deletes
    when: action.details.exists(d, d.type == 'mcp_tool_call' && d.tool == 'delete_note')
    decision: deny
    reason: Agents may not delete notes.
`
	if r := f.tn.admin("PUT", "/admin/rules", map[string]any{"ruleset": ruleset, "comment": "no deletes"}); r.Status != 200 {
		t.Fatalf("activate: %d %s", r.Status, r.Raw)
	}
	f.stdioUpstream()
	cs := f.connect(t, false)
	r, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "delete_note", Arguments: map[string]any{"id": "n1"}})
	if err != nil || !r.IsError || resultText(t, r) != "Refused by Countersign (refused by policy: rule no-note-deletes: Agents may not delete notes); the tool did not run." {
		t.Fatalf("denied by policy: %v %+v %q", err, r, resultText(t, r))
	}
	if o := f.log.waitOutcome(t, 1); o["outcome"] != "refused" {
		t.Fatalf("outcome: %v", o)
	}
	if f.ran(t, "delete_note") != 0 {
		t.Fatal("a call denied by policy reached the upstream")
	}
}

func TestMCPGatewayFlagsFailClosed(t *testing.T) {
	env := map[string]string{"COUNTERSIGN_CLIENT_SECRET": "s"}
	getenv := func(k string) string { return env[k] }
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--issuer", "http://127.0.0.1:1", "--user", "alice", "--upstream-url", "http://127.0.0.1:2/mcp"},
			"--issuer, --client-id, --user and a client secret are required"},
		{[]string{"--issuer", "http://127.0.0.1:1", "--client-id", "g", "--user", "alice", "--upstream-url", "http://127.0.0.1:2/mcp", "--listen", "0.0.0.0:9000"},
			"--listen 0.0.0.0:9000: the gateway does not authenticate its clients"},
		{[]string{"--issuer", "http://127.0.0.1:1", "--client-id", "g", "--user", "alice", "--upstream-command", `notes "unterminated`},
			"--upstream-command: unterminated quote or escape"},
		{[]string{"--issuer", "http://127.0.0.1:1", "--client-id", "g", "--user", "alice"},
			"exactly one of an upstream command and an upstream URL"},
	} {
		var out, errOut syncBuffer
		code := run(context.Background(), append([]string{"mcp-gateway"}, tc.args...), getenv, &out, &errOut)
		if code != 1 || !strings.Contains(errOut.String(), tc.want) || out.String() != "" {
			t.Errorf("%v: exit %d, stderr %q, stdout %q; want %q", tc.args, code, errOut.String(), out.String(), tc.want)
		}
	}
	if got, err := splitCommand(`npx -y "@scope/server fs" 'a b' c\ d`); err != nil ||
		strings.Join(got, "|") != "npx|-y|@scope/server fs|a b|c d" {
		t.Fatalf("splitCommand = %q, %v", got, err)
	}
}

// A call refused for a passing reason (a rate limit: nothing was decided)
// is not kept as the answer: the same request retried asks again.
func TestMCPGatewayRetryAfterRateLimitAsksAgain(t *testing.T) {
	f := newMCPFixture(t, func(c *Config) { c.MaxPendingPerAgent = 1 })
	f.stdioUpstream()
	cs := f.connect(t, false)
	// The first destructive call waits on the phone; with one pending
	// request per agent and user allowed, the next one is refused (429).
	first := callAsync(context.Background(), cs, &mcp.CallToolParams{Name: "delete_note", Arguments: map[string]any{"id": "n1"}})
	push := nextPush(t, f.phone)
	s := openRaw(t, f.gatewayTransport(t, false))
	args := map[string]any{"name": "delete_note", "arguments": map[string]any{"id": "n2"}}
	if r := s.call(8, "tools/call", args); !strings.Contains(string(r), "slow_down") || !strings.Contains(string(r), `"isError":true`) {
		t.Fatalf("over the cap: %s", r)
	}
	if err := f.phone.Decide(context.Background(), push.ID, "deny"); err != nil {
		t.Fatal(err)
	}
	wait(t, first)
	done := make(chan json.RawMessage, 1)
	go func() { done <- s.call(8, "tools/call", args) }()
	again := nextPush(t, f.phone)
	if err := f.phone.Decide(context.Background(), again.ID, "approve"); err != nil {
		t.Fatal(err)
	}
	if r := <-done; !strings.Contains(string(r), "deleted n2") {
		t.Fatalf("retry after the limit: %s", r)
	}
	if f.ran(t, "delete_note") != 1 {
		t.Fatal("delete_note did not run exactly once")
	}
}
