package phone

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// pushBuffer is how many undelivered pushes Pushes() holds; more are
// dropped (the server still lists the requests).
const pushBuffer = 256

// Options configure a Phone. The zero value is an in-memory phone
// listening on 127.0.0.1 with a random port.
type Options struct {
	// StatePath is the JSON file keeping keys and enrollment (mode 0600);
	// "" keeps them in memory only.
	StatePath string
	// Listen is the address of the push receiver and web page; "" reuses
	// the address saved in the state (so the push endpoint the server knows
	// stays valid) or else 127.0.0.1:0.
	Listen string
	// Name is the device name sent at enrollment; "" is "mobile-stub".
	Name string
	// HTTPClient calls the server; nil is a client with a 15 s timeout.
	HTTPClient *http.Client
	// Now is the clock for JWTs and VAPID checks; nil is time.Now.
	Now func() time.Time
	// Location is the phone's time zone: the web page shows every time
	// in it, and names it. nil is time.Local (the TZ of the process).
	Location *time.Location
}

// Phone is a simulated device. Its methods are safe for concurrent use.
type Phone struct {
	server string // base URL of the server, no trailing slash
	path   string
	client *http.Client
	now    func() time.Time
	loc    *time.Location // the time zone the page shows times in
	keys   keys
	pushes chan Push
	csrf   string // the web page's form token
	listen string // Options.Listen: an address the caller insists on

	mu        sync.Mutex
	st        state
	ln        net.Listener
	srv       *http.Server
	base      string            // "http://host:port" of the listener
	summaries map[string]string // request id -> summary from its push
	flash     string            // the web page's last result line
	closed    bool
	done      chan struct{}
}

// New loads (or creates) the phone's state and returns a phone for the
// server at serverURL. serverURL may be "" when the state file names the
// server it enrolled with; a state enrolled with another server is refused.
func New(serverURL string, opts Options) (*Phone, error) {
	st, k, err := loadState(opts.StatePath)
	if err != nil {
		return nil, err
	}
	serverURL = strings.TrimRight(serverURL, "/")
	switch {
	case serverURL == "" && st.Server == "":
		return nil, errors.New("phone: no server URL")
	case serverURL == "":
		serverURL = st.Server
	case st.DeviceID != "" && st.Server != "" && st.Server != serverURL:
		return nil, fmt.Errorf("phone: state is enrolled with %s, not %s", st.Server, serverURL)
	}
	u, err := url.Parse(serverURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("phone: server URL %q is not an absolute http(s) URL", serverURL)
	}
	if opts.Name != "" {
		st.Name = opts.Name
	}
	if st.Name == "" {
		st.Name = "mobile-stub"
	}
	p := &Phone{
		server:    serverURL,
		path:      opts.StatePath,
		client:    opts.HTTPClient,
		now:       opts.Now,
		keys:      k,
		pushes:    make(chan Push, pushBuffer),
		csrf:      randomID(),
		st:        st,
		summaries: map[string]string{},
		done:      make(chan struct{}),
	}
	if p.client == nil {
		p.client = &http.Client{Timeout: 15 * time.Second}
	}
	if p.now == nil {
		p.now = time.Now
	}
	if p.loc = opts.Location; p.loc == nil {
		p.loc = time.Local
	}
	p.listen = opts.Listen
	return p, nil
}

// Start listens for pushes and serves the web page until ctx is done or
// Close is called.
func (p *Phone) Start(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("phone: closed")
	}
	if p.ln != nil {
		return errors.New("phone: already started")
	}
	ln, err := p.listenLocked()
	if err != nil {
		return err
	}
	p.ln = ln
	p.base = "http://" + urlHost(ln.Addr().(*net.TCPAddr))
	p.st.Listen = ln.Addr().String()
	if err := saveState(p.path, p.st); err != nil {
		_ = ln.Close()
		return err
	}
	p.srv = &http.Server{
		Handler:           p.routes(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      20 * time.Second,
	}
	go func() { _ = p.srv.Serve(ln) }()
	go func() {
		select {
		case <-ctx.Done():
			_ = p.Close()
		case <-p.done:
		}
	}()
	return nil
}

// listenLocked binds Options.Listen, else the address saved in the state
// (keeping the endpoint the server knows), else, or when that address is
// taken, 127.0.0.1:0.
func (p *Phone) listenLocked() (net.Listener, error) {
	if p.listen != "" {
		ln, err := net.Listen("tcp", p.listen)
		if err != nil {
			return nil, fmt.Errorf("phone: listen: %w", err)
		}
		return ln, nil
	}
	if p.st.Listen != "" {
		if ln, err := net.Listen("tcp", p.st.Listen); err == nil {
			return ln, nil
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("phone: listen: %w", err)
	}
	return ln, nil
}

// urlHost is the host:port to put in URLs for a listener: an unspecified
// address is reached through loopback.
func urlHost(a *net.TCPAddr) string {
	ip := a.IP
	if ip.IsUnspecified() {
		ip = net.IPv4(127, 0, 0, 1)
	}
	return net.JoinHostPort(ip.String(), fmt.Sprint(a.Port))
}

func (p *Phone) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /push/{id}", p.handlePush)
	mux.HandleFunc("GET /{$}", p.handlePage)
	mux.HandleFunc("POST /decide", p.handleDecide)
	mux.HandleFunc("POST /mandates/revoke", p.handleRevokeMandate)
	mux.HandleFunc("GET /static/app.css", handleCSS)
	// The page's state-changing routes refuse cross-origin browser
	// requests (Sec-Fetch-Site / Origin); the push route is not a browser
	// route and is authenticated by VAPID instead.
	cop := http.NewCrossOriginProtection()
	cop.AddInsecureBypassPattern("POST /push/{id}")
	return cop.Handler(mux)
}

// Close stops the listener and closes Pushes().
func (p *Phone) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.done)
	srv := p.srv
	p.mu.Unlock()
	var err error
	if srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err = srv.Shutdown(ctx)
	}
	p.mu.Lock()
	close(p.pushes) // deliver checks closed under mu, so no send can race this
	p.mu.Unlock()
	return err
}

// URL is the base URL of the web page ("" before Start).
func (p *Phone) URL() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.base == "" {
		return ""
	}
	return p.base + "/"
}

// PushEndpoint is the push subscription endpoint ("" before Start).
func (p *Phone) PushEndpoint() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.endpointLocked()
}

func (p *Phone) endpointLocked() string {
	if p.base == "" {
		return ""
	}
	return p.base + "/push/" + p.st.PushID
}

// DeviceID is the id the server gave at enrollment ("" before).
func (p *Phone) DeviceID() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.st.DeviceID
}

// UserID is the user the device is enrolled for ("" before enrollment).
func (p *Phone) UserID() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.st.UserID
}

// VAPIDPublicKey is the server's VAPID key learnt at enrollment; pushes
// signed by any other key are refused.
func (p *Phone) VAPIDPublicKey() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.st.VAPIDPublicKey
}

// Enrolled reports whether the phone has a device id.
func (p *Phone) Enrolled() bool { return p.DeviceID() != "" }

// Pushes delivers decrypted pushes as they arrive; it is closed by Close.
func (p *Phone) Pushes() <-chan Push { return p.pushes }

// identity returns the device id and issuer for JWTs.
func (p *Phone) identity() (deviceID, issuer string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.st.DeviceID, p.st.Issuer
}

// deliver hands a push to Pushes() without ever blocking the receiver.
func (p *Phone) deliver(push Push) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if push.Summary != "" && len(p.summaries) < 1024 {
		p.summaries[push.ID] = push.Summary
	}
	if p.closed {
		return
	}
	select {
	case p.pushes <- push:
	default: // full: the request is still listed by the server
	}
}
