package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/countersign/countersign/ciba/agent"
	"github.com/countersign/countersign/ciba/resource"
	"github.com/countersign/countersign/mcpgateway"
	"github.com/countersign/countersign/mcpgateway/example"
	"github.com/countersign/countersign/mcpgateway/guard"
)

const mcpUsage = `MCP commands:
  countersign mcp-gateway --issuer URL --client-id ID --user USER (--upstream-command "CMD ARGS" | --upstream-url URL) [--listen ADDR]
      an MCP server in front of another: every tools/call waits for Countersign (and the user's phone when the
      rules say so); stdio unless --listen (streamable HTTP at /mcp, loopback only: it authenticates no client).
      The secret comes from COUNTERSIGN_CLIENT_SECRET or --client-secret.
  countersign mcp-example-server [--listen ADDR [--issuer URL]] [--calls-file FILE]
      a notebook MCP server (read_notes, delete_note) to try the gateway with
`

type gatewayFlags struct {
	issuer, clientID, secret, user, upCommand, upURL, upName, listen, pingListen string
	expiry                                                                       time.Duration
}

func (f *gatewayFlags) register(fs *flag.FlagSet, getenv func(string) string) {
	fs.StringVar(&f.issuer, "issuer", getenv("COUNTERSIGN_ISSUER"), "Countersign's issuer URL (COUNTERSIGN_ISSUER)")
	fs.StringVar(&f.clientID, "client-id", getenv("COUNTERSIGN_CLIENT_ID"), "the gateway's client id (COUNTERSIGN_CLIENT_ID)")
	fs.StringVar(&f.secret, "client-secret", "", "the gateway's client secret (COUNTERSIGN_CLIENT_SECRET)")
	fs.StringVar(&f.user, "user", getenv("COUNTERSIGN_MCP_USER"), "the user the gateway acts for (COUNTERSIGN_MCP_USER)")
	fs.StringVar(&f.upCommand, "upstream-command", "", "the MCP server to run, as a command line (stdio)")
	fs.StringVar(&f.upURL, "upstream-url", "", "the MCP server's streamable-HTTP URL")
	fs.StringVar(&f.upName, "upstream-name", "", "how the phone names the server (default: its own name)")
	fs.StringVar(&f.listen, "listen", "", "serve streamable HTTP at http://ADDR/mcp instead of stdio")
	fs.StringVar(&f.pingListen, "ping-listen", "", "for a ping-mode client: receive pings at http://ADDR/ciba/ping")
	fs.DurationVar(&f.expiry, "expiry", 5*time.Minute, "how long a call waits for a decision (requested_expiry)")
}

// mcpGatewayCmd runs `countersign mcp-gateway`; in stdio mode stdout is
// the MCP channel, so everything else goes to stderr.
func mcpGatewayCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mcp-gateway", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f gatewayFlags
	f.register(fs, getenv)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if f.secret == "" {
		f.secret = getenv("COUNTERSIGN_CLIENT_SECRET")
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil))
	if err := runGateway(ctx, f, log, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "countersign mcp-gateway: %v\n", err)
		return 1
	}
	return 0
}

func runGateway(ctx context.Context, f gatewayFlags, log *slog.Logger, stdout, stderr io.Writer) error {
	if f.issuer == "" || f.clientID == "" || f.secret == "" || f.user == "" {
		return errors.New("--issuer, --client-id, --user and a client secret are required")
	}
	// Whoever reaches the downstream acts as the user (within the rules):
	// it authenticates nobody, so it listens on loopback only.
	if f.listen != "" && !loopbackAddr(f.listen) {
		return fmt.Errorf("--listen %s: the gateway does not authenticate its clients; listen on a loopback address", f.listen)
	}
	up := mcpgateway.Upstream{Name: f.upName, URL: f.upURL, Stderr: stderr}
	if f.upCommand != "" {
		var err error
		if up.Command, err = splitCommand(f.upCommand); err != nil {
			return err
		}
	}
	ag := &agent.Client{Issuer: f.issuer, ClientID: f.clientID, Secret: f.secret, HTTP: &http.Client{Timeout: 30 * time.Second}}
	var servers []*http.Server
	defer func() {
		for _, s := range servers {
			s.Close()
		}
	}()
	if f.pingListen != "" {
		ag.Pings = &agent.PingReceiver{}
		mux := http.NewServeMux()
		mux.Handle("/ciba/ping", ag.Pings)
		s, err := listenHTTP(f.pingListen, mux)
		if err != nil {
			return err
		}
		servers = append(servers, s)
	}
	g, err := mcpgateway.New(ctx, mcpgateway.Config{Upstream: up, Agent: ag, User: f.user, Expiry: f.expiry, Log: log})
	if err != nil {
		return err
	}
	defer g.Close()
	if f.listen == "" {
		return g.Server().Run(ctx, mcpgateway.StampTransport(&mcp.IOTransport{Reader: os.Stdin, Writer: nopWriteCloser{stdout}}))
	}
	mux := http.NewServeMux()
	mux.Handle("/mcp", g.Handler())
	s, err := listenHTTP(f.listen, mux)
	if err != nil {
		return err
	}
	servers = append(servers, s)
	log.Info("mcp gateway listening", "url", "http://"+f.listen+"/mcp")
	<-ctx.Done()
	return nil
}

func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return host == "localhost" || (ip != nil && ip.IsLoopback())
}

// listenHTTP serves h on addr in the background.
func listenHTTP(addr string, h http.Handler) (*http.Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.Serve(ln) }()
	return s, nil
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// splitCommand splits a command line on blanks, with '...' and "..."
// quoting and backslash escapes as a POSIX shell does (no expansion).
func splitCommand(s string) ([]string, error) {
	var out []string
	var cur strings.Builder
	inWord, quote, esc := false, rune(0), false
	for _, r := range s {
		switch {
		case esc:
			cur.WriteRune(r)
			esc = false
		case r == '\\' && quote != '\'':
			esc, inWord = true, true
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t' || r == '\n':
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 || esc {
		return nil, errors.New("--upstream-command: unterminated quote or escape")
	}
	if inWord {
		out = append(out, cur.String())
	}
	if len(out) == 0 {
		return nil, errors.New("--upstream-command is empty")
	}
	return out, nil
}

// mcpExampleCmd runs the example notebook server.
func mcpExampleCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mcp-example-server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "", "serve streamable HTTP at http://ADDR/mcp instead of stdio")
	issuer := fs.String("issuer", "", "with --listen: a tools/call needs a Countersign token that covers it")
	calls := fs.String("calls-file", "", "append the name of every tool call that ran to this file")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	notes := example.NewNotes()
	if *calls != "" {
		var mu sync.Mutex
		notes.OnCall = func(tool string, _ map[string]any) {
			mu.Lock()
			defer mu.Unlock()
			if f, err := os.OpenFile(*calls, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600); err == nil {
				fmt.Fprintln(f, tool)
				f.Close()
			}
		}
	}
	srv := notes.Server()
	if *listen == "" {
		if err := srv.Run(ctx, &mcp.IOTransport{Reader: os.Stdin, Writer: nopWriteCloser{stdout}}); err != nil && ctx.Err() == nil {
			fmt.Fprintf(stderr, "countersign mcp-example-server: %v\n", err)
			return 1
		}
		return 0
	}
	var h http.Handler = mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil)
	if *issuer != "" {
		g := &guard.Guard{Verifier: &resource.Middleware{Issuer: *issuer, Audience: "http://" + *listen + "/mcp"}}
		h = g.Handler(h)
	}
	mux := http.NewServeMux()
	mux.Handle("/mcp", h)
	s, err := listenHTTP(*listen, mux)
	if err != nil {
		fmt.Fprintf(stderr, "countersign mcp-example-server: %v\n", err)
		return 1
	}
	defer s.Close()
	<-ctx.Done()
	return 0
}
