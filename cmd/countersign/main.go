// Command countersign is the Countersign authorization server and its
// admin tool. main only calls run, so tests start the server on :0.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	// User time zones are IANA names: carry the database so that they
	// resolve on hosts (and images) without one.
	_ "time/tzdata"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
