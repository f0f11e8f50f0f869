package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
)

var (
	readmePath      = filepath.Join("..", "..", "README.md")
	walkthroughPath = filepath.Join("..", "..", "docs", "walkthrough.sh")
)

// readmeBlock returns the first fenced block of kind lang after heading
// (or any line) start in README.md.
func readmeBlock(t *testing.T, start, lang string) string {
	t.Helper()
	b, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), start)
	if !ok {
		t.Fatalf("README.md has no %q", start)
	}
	_, rest, ok = strings.Cut(rest, "```"+lang+"\n")
	block, _, closed := strings.Cut(rest, "```\n")
	if !ok || !closed {
		t.Fatalf("README.md has no ```%s block after %q", lang, start)
	}
	return block
}

// walkthroughBody is docs/walkthrough.sh without its header (the lines
// before the first blank line).
func walkthroughBody(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(walkthroughPath)
	if err != nil {
		t.Fatal(err)
	}
	_, body, ok := strings.Cut(string(b), "\n\n")
	if !ok {
		t.Fatal("docs/walkthrough.sh: no blank line after its header")
	}
	return body
}

// The README shows the script that TestReadmeWalkthroughRuns runs, line for
// line: neither can change without the other.
func TestReadmeShowsTheWalkthroughScript(t *testing.T) {
	shown := readmeBlock(t, "### Walkthrough with curl", "sh")
	script := walkthroughBody(t)
	if shown == script {
		return
	}
	s, w := strings.Split(shown, "\n"), strings.Split(script, "\n")
	for i := 0; i < len(s) || i < len(w); i++ {
		var a, b string
		if i < len(s) {
			a = s[i]
		}
		if i < len(w) {
			b = w[i]
		}
		if a != b {
			t.Fatalf("README.md's walkthrough differs from docs/walkthrough.sh at line %d of the block:\nREADME: %q\nscript: %q", i+1, a, b)
		}
	}
}

// step is a command of the walkthrough and the answer README shows under it.
type step struct {
	command, answer string
}

// walkthroughSteps reads the curl commands of the script, each with the
// "# {...}" comment that follows it.
func walkthroughSteps(t *testing.T, body string) []step {
	t.Helper()
	var steps []step
	lines := strings.Split(body, "\n")
	for i := 0; i < len(lines); i++ {
		if !strings.HasPrefix(lines[i], "curl ") {
			continue
		}
		cmd := lines[i]
		for strings.HasSuffix(lines[i], `\`) {
			i++
			cmd += "\n" + lines[i]
		}
		if i+1 >= len(lines) || !strings.HasPrefix(lines[i+1], "# {") {
			t.Fatalf("the walkthrough shows no answer under\n%s", cmd)
		}
		steps = append(steps, step{command: cmd, answer: strings.TrimPrefix(lines[i+1], "# ")})
	}
	return steps
}

// TestReadmeWalkthroughRuns starts `countersign serve` as README says (on
// a free port), runs docs/walkthrough.sh as written against it and checks
// that every answer is the one README shows, and that the access token
// reads as README's example payload.
func TestReadmeWalkthroughRuns(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the walkthrough needs %s: apt-get install -y %s (.ci/run does)", tool, tool)
		}
	}
	issuer, token := serveLikeREADME(t)
	script, err := filepath.Abs(walkthroughPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", script)
	cmd.Dir = t.TempDir()
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + cmd.Dir,
		"COUNTERSIGN_ADMIN_TOKEN=" + token, "COUNTERSIGN_ISSUER=" + issuer}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("docs/walkthrough.sh: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	// Each curl prints one JSON answer; the script prints nothing else.
	steps := walkthroughSteps(t, walkthroughBody(t))
	dec := json.NewDecoder(&stdout)
	var accessToken string
	for _, s := range steps {
		var got any
		if err := dec.Decode(&got); err != nil {
			t.Fatalf("no JSON answer for\n%s\n(%v)", s.command, err)
		}
		if err := matchShown(shownJSON(t, s.answer), got, false); err != nil {
			t.Errorf("README shows %s\nthe server answered %s\n%v\nfor\n%s", s.answer, compact(got), err, s.command)
		}
		if at, ok := got.(map[string]any)["access_token"].(string); ok {
			accessToken = at
		}
	}
	if rest, _ := io.ReadAll(io.MultiReader(dec.Buffered(), &stdout)); len(bytes.TrimSpace(rest)) > 0 {
		t.Errorf("output the README does not show: %s", rest)
	}
	if accessToken == "" {
		t.Fatal("the walkthrough issued no access token")
	}
	checkExamplePayload(t, issuer, accessToken)
}

// checkExamplePayload verifies the token as README says a resource server
// would (keys from the discovery document's JWKS) and compares its payload
// with README's example: the same members, the same values but for the
// "..." placeholders and the example's timestamps.
func checkExamplePayload(t *testing.T, issuer, accessToken string) {
	t.Helper()
	ctx := context.Background()
	provider, err := oidc.NewProvider(ctx, issuer)
	if err != nil {
		t.Fatalf("discovery at %s: %v", issuer, err)
	}
	if _, err := provider.Verifier(&oidc.Config{ClientID: issuer}).Verify(ctx, accessToken); err != nil {
		t.Fatalf("the walkthrough's access token does not verify with the JWKS: %v", err)
	}
	example := readmeBlock(t, "The access token's payload reads, for example:", "json")
	example = strings.ReplaceAll(example, "http://127.0.0.1:8080", issuer)
	_, payload, _ := strings.Cut(accessToken, ".")
	payload, _, _ = strings.Cut(payload, ".")
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	var got any
	if err == nil {
		err = json.Unmarshal(raw, &got)
	}
	if err != nil {
		t.Fatalf("access token payload: %v", err)
	}
	if err := matchShown(shownJSON(t, example), got, true); err != nil {
		t.Errorf("README's example payload\n%s\ndoes not read as the token's\n%s\n%v", example, raw, err)
	}
}

// shownJSON parses an answer as README shows it: `,...}` stands for more
// members, kept as the member "..." that matchShown reads.
func shownJSON(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(strings.ReplaceAll(s, `,...}`, `,"...":"..."}`)), &v); err != nil {
		t.Fatalf("README shows an answer that is not JSON: %s (%v)", s, err)
	}
	return v
}

// matchShown compares an answer with README's: a string ending in "..."
// stands for any non-empty string, an object with a "..." member may have
// more members, and with anyNumber a number stands for any number.
func matchShown(want, got any, anyNumber bool) error {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return fmt.Errorf("want an object, got %s", compact(got))
		}
		return matchObject(w, g, anyNumber)
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return fmt.Errorf("want %s, got %s", compact(want), compact(got))
		}
		for i := range w {
			if err := matchShown(w[i], g[i], anyNumber); err != nil {
				return fmt.Errorf("[%d]: %w", i, err)
			}
		}
		return nil
	case string:
		if g, ok := got.(string); ok && (g == w || strings.HasSuffix(w, "...") && g != "") {
			return nil
		}
	case float64:
		if g, ok := got.(float64); ok && (g == w || anyNumber) {
			return nil
		}
	default:
		if compact(want) == compact(got) {
			return nil
		}
	}
	return fmt.Errorf("want %s, got %s", compact(want), compact(got))
}

// matchObject matches each member README shows; more members only where
// it shows "...".
func matchObject(w, g map[string]any, anyNumber bool) error {
	_, more := w["..."]
	for k, wv := range w {
		if k == "..." {
			continue
		}
		gv, ok := g[k]
		if !ok {
			return fmt.Errorf("no member %q", k)
		}
		if err := matchShown(wv, gv, anyNumber); err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
	}
	if extra := extraKeys(w, g); len(extra) > 0 && !more {
		return fmt.Errorf("members README does not show: %v", extra)
	}
	return nil
}

func extraKeys(want, got map[string]any) []string {
	var extra []string
	for k := range got {
		if _, ok := want[k]; !ok {
			extra = append(extra, k)
		}
	}
	sort.Strings(extra)
	return extra
}

func compact(v any) string { b, _ := json.Marshal(v); return string(b) }

// serveLikeREADME runs `countersign serve --listen 127.0.0.1:PORT` on the
// embedded store, with no COUNTERSIGN_* variable set, and returns its URL
// (which must be the issuer it prints) and the admin token it tells the
// user to export.
func serveLikeREADME(t *testing.T) (url, token string) {
	var issuer string
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := lineWriter{lines: make(chan string, 64)}
	done := make(chan int, 1)
	port := strconv.Itoa(freePort(t))
	go func() {
		done <- run(ctx, []string{"serve", "--listen", "127.0.0.1:" + port}, func(string) string { return "" }, out, io.Discard)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Error("serve did not shut down")
		}
	})
	for issuer == "" {
		select {
		case l := <-out.lines:
			if v, ok := strings.CutPrefix(strings.TrimSpace(l), "export COUNTERSIGN_ADMIN_TOKEN="); ok {
				token = v
			}
			if _, rest, ok := strings.Cut(l, "(issuer "); ok {
				issuer = strings.TrimSuffix(rest, ")")
			}
		case code := <-done:
			t.Fatalf("serve exited with %d", code)
		case <-time.After(20 * time.Second):
			t.Fatal("serve did not start")
		}
	}
	if token == "" {
		t.Fatal("serve printed no export COUNTERSIGN_ADMIN_TOKEN= line")
	}
	// The issuer defaults to the address serve listens on.
	listening := "http://127.0.0.1:" + port
	if issuer != listening {
		t.Errorf("serve --listen 127.0.0.1:%s prints issuer %s, want %s", port, issuer, listening)
	}
	return listening, token
}
