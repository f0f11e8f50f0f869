package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/countersign/countersign/mobile-stub/phone"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "mobile-stub:", err)
		os.Exit(1)
	}
}

// run is the whole command, testable without a process.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mobile-stub", flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := fs.String("server", "", "Countersign server URL (default: the one in --state)")
	code := fs.String("enroll", "", "one-time enrollment code (not needed once --state is enrolled)")
	statePath := fs.String("state", "", "state file keeping keys and enrollment (mode 0600); empty: in memory")
	listen := fs.String("listen", "", "push receiver and web page address (default: the one in --state, else 127.0.0.1:0)")
	auto := fs.String("auto", "", "decide every pushed request without a person: approve or deny")
	name := fs.String("name", "", "device name shown to the user (default mobile-stub)")
	zone := fs.String("timezone", "", "the phone's time zone (IANA name, e.g. Europe/Berlin); the web page shows every time in it (default: $TZ, else the system's)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if *auto != "" && *auto != phone.Approve && *auto != phone.Deny {
		return fmt.Errorf("--auto must be approve or deny, not %q", *auto)
	}

	loc := time.Local
	if *zone != "" {
		var err error
		if loc, err = time.LoadLocation(*zone); err != nil {
			return fmt.Errorf("--timezone: %v", err)
		}
	}
	p, err := phone.New(*server, phone.Options{StatePath: *statePath, Listen: *listen, Name: *name, Location: loc})
	if err != nil {
		return err
	}
	defer func() { _ = p.Close() }()
	if err := p.Start(ctx); err != nil {
		return err
	}
	switch {
	case *code != "":
		if err := p.Enroll(ctx, *code); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "enrolled: device %s for user %s\n", p.DeviceID(), p.UserID())
	case !p.Enrolled():
		return errors.New("not enrolled: pass --enroll CODE (an admin creates one with POST /admin/users/{id}/enrollments)")
	case p.PushEndpointChanged():
		if err := p.UpdatePushSubscription(ctx); err != nil {
			fmt.Fprintf(stderr, "warning: the push endpoint changed and the server was not told (%v); pushes will not arrive\n", err)
		}
		fallthrough
	default:
		fmt.Fprintf(stdout, "device %s for user %s\n", p.DeviceID(), p.UserID())
	}
	if *statePath == "" {
		fmt.Fprintln(stderr, "note: no --state file: keys and enrollment are lost when this process ends")
	}
	fmt.Fprintf(stdout, "push endpoint: %s\n", p.PushEndpoint())

	if *auto != "" {
		fmt.Fprintf(stdout, "deciding every request automatically: %s\n", *auto)
		p.AutoDecide(ctx, *auto, func(push phone.Push, err error) {
			if err != nil {
				fmt.Fprintf(stderr, "request %s: %v\n", push.ID, err)
				return
			}
			fmt.Fprintf(stdout, "request %s from %s: %s (%q)\n", push.ID, agentName(push.Agent), *auto, push.BindingMessage)
		})
		return nil
	}
	fmt.Fprintf(stdout, "open the phone: %s\n", p.URL())
	for {
		select {
		case <-ctx.Done():
			return nil
		case push, ok := <-p.Pushes():
			if !ok {
				return nil
			}
			fmt.Fprintf(stdout, "push: request %s from %s, %s risk: %q — open %s\n",
				push.ID, agentName(push.Agent), push.Risk.Level, push.BindingMessage, p.URL())
		}
	}
}

func agentName(a phone.Agent) string {
	if a.ClientName != "" {
		return a.ClientName
	}
	return a.ClientID
}
