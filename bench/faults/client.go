package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Outcome classes of one HTTP call, for the per-fault tally.
const (
	clsOK        = "ok"         // 2xx
	clsProtocol  = "protocol"   // the CIBA answers of a request's life: authorization_pending, access_denied, ...
	clsRFC       = "rfc_error"  // any other error answer {"error","error_description"} below 500
	cls503       = "503"        // 503 temporarily_unavailable with Retry-After
	clsTransport = "connection" // refused, reset or timed out: no answer at all
	clsUnclean   = "unclean"    // anything else: a 500, a 503 without Retry-After, a body that is not the RFC form
)

// reply is one HTTP answer.
type reply struct {
	Status int
	Body   map[string]any
	Raw    []byte
	Header http.Header
	Err    error // transport error: no answer
	Class  string
}

func (r reply) str(k string) string { s, _ := r.Body[k].(string); return s }
func (r reply) code() string        { return r.str("error") }

// unknownEffect: the call may or may not have taken effect.
func (r reply) unknownEffect() bool {
	return r.Err != nil || r.Status >= 500
}

// callLog is every call's time and class, for the per-fault windows.
type callLog struct {
	mu    sync.Mutex
	calls []loggedCall
}

type loggedCall struct {
	At     time.Time
	Class  string
	What   string
	Detail string // for failures: the status and the error code or body
}

func (l *callLog) add(at time.Time, cls, what, detail string) {
	l.mu.Lock()
	l.calls = append(l.calls, loggedCall{at, cls, what, detail})
	l.mu.Unlock()
}

// detail names a failed answer briefly (never a token: error bodies carry none).
func detail(r reply) string {
	if r.Err != nil {
		msg := r.Err.Error()
		if i := strings.LastIndex(msg, ": "); i >= 0 {
			msg = msg[i+2:]
		}
		return msg
	}
	if c := r.code(); c != "" {
		return fmt.Sprintf("%d %s", r.Status, c)
	}
	body := string(r.Raw)
	if len(body) > 60 {
		body = body[:60]
	}
	return fmt.Sprintf("%d %q", r.Status, body)
}

// api calls the nodes.
type api struct {
	hc    *http.Client
	admin string
	log   *callLog
}

func (a *api) do(ctx context.Context, method, u string, hdr http.Header, body []byte, what string) reply {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return reply{Err: err, Class: clsTransport}
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		r := reply{Err: err, Class: clsTransport}
		a.log.add(time.Now(), r.Class, what, detail(r))
		return r
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	r := reply{Status: resp.StatusCode, Raw: raw, Header: resp.Header, Err: err}
	_ = json.Unmarshal(raw, &r.Body)
	r.Class = classify(r)
	d := ""
	if r.Class != clsOK && r.Class != clsProtocol {
		d = detail(r)
	}
	a.log.add(time.Now(), r.Class, what, d)
	return r
}

// classify sorts an answer: the RFC error form is exactly "error" and
// optionally "error_description" (RFC 6749 §5.2).
func classify(r reply) string {
	switch {
	case r.Err != nil:
		return clsTransport
	case r.Status < 300:
		return clsOK
	}
	var body map[string]json.RawMessage
	if json.Unmarshal(r.Raw, &body) != nil || body["error"] == nil {
		return clsUnclean
	}
	for k := range body {
		if k != "error" && k != "error_description" && k != "problems" {
			return clsUnclean
		}
	}
	if r.Status == 503 {
		if r.code() == "temporarily_unavailable" && r.Header.Get("Retry-After") != "" {
			return cls503
		}
		return clsUnclean
	}
	if r.Status >= 500 {
		return clsUnclean
	}
	switch r.code() {
	case outPending, outSlowDown, outDenied, outExpired, outGrant:
		return clsProtocol
	}
	return clsRFC
}

// form posts a form with client_secret_basic (RFC 6749 §2.3.1).
func (a *api) form(ctx context.Context, base, path string, c *agent, v url.Values) reply {
	what := path
	if v.Get("grant_type") == exchangeGrant {
		what = "/token (exchange)"
	}
	hdr := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	req, _ := http.NewRequest("POST", base, nil)
	req.SetBasicAuth(url.QueryEscape(c.id), url.QueryEscape(c.secret))
	hdr.Set("Authorization", req.Header.Get("Authorization"))
	return a.do(ctx, "POST", base+path, hdr, []byte(v.Encode()), what)
}

// adminCall makes an admin API call, retrying faults (setup runs before
// any fault; the final reads run after recovery).
func (a *api) adminCall(base, method, path string, in any) (reply, error) {
	var body []byte
	if in != nil {
		body, _ = json.Marshal(in)
	}
	hdr := http.Header{"Authorization": {"Bearer " + a.admin}, "Content-Type": {"application/json"}}
	var r reply
	for try := 0; try < 20; try++ {
		r = a.do(context.Background(), method, base+path, hdr, body, "admin")
		if !r.unknownEffect() {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if r.Err != nil {
		return r, r.Err
	}
	if r.Status >= 300 {
		return r, fmt.Errorf("%s %s: %d %s", method, path, r.Status, strings.TrimSpace(string(r.Raw)))
	}
	return r, nil
}

// agent is a registered OAuth client.
type agent struct {
	id, secret, mode string
}

func (a *api) register(base string, meta map[string]any) (*agent, error) {
	r, err := a.adminCall(base, "POST", "/admin/clients", meta)
	if err != nil {
		return nil, err
	}
	if r.str("client_secret") == "" {
		return nil, errors.New("client registered without a secret: " + string(r.Raw))
	}
	mode, _ := meta["backchannel_token_delivery_mode"].(string)
	return &agent{id: r.str("client_id"), secret: r.str("client_secret"), mode: mode}, nil
}

// loggingTransport tallies the phones' calls like the agents' ones.
type loggingTransport struct {
	log  *callLog
	base http.RoundTripper
}

func (t loggingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	what := "phone " + req.Method + " " + phonePath(req.URL.Path)
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		r := reply{Err: err, Class: clsTransport}
		t.log.add(time.Now(), r.Class, what, detail(r))
		return nil, err
	}
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(raw))
	r := reply{Status: resp.StatusCode, Raw: raw, Header: resp.Header, Err: err}
	_ = json.Unmarshal(raw, &r.Body)
	r.Class = classify(r)
	if r.Status == 409 {
		r.Class = clsProtocol // already decided or expired: the device API's answer of a request's life
	}
	d := ""
	if r.Class != clsOK && r.Class != clsProtocol {
		d = detail(r)
	}
	t.log.add(time.Now(), r.Class, what, d)
	return resp, err
}

// phonePath drops the request id from device API paths.
func phonePath(p string) string {
	parts := strings.Split(p, "/")
	if len(parts) > 3 && parts[1] == "device" && parts[2] == "requests" {
		parts[3] = "{id}"
	}
	return strings.Join(parts, "/")
}
