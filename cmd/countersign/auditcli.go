package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"
)

const auditUsage = `Audit commands (against a running server; --server, --admin-token):
  countersign audit verify [--output table|json] recompute every hash chain; names the first broken event
  countersign audit export [--since T] [--until T] [--user U] [--agent A] [--type T] > audit.jsonl
  countersign audit tail [--n 20] [--follow] [--since T] [--user U] [--agent A] [--type T]
`

// auditFlags are the flags of the audit commands; each verb registers
// only its own, so that --help lists what the verb reads.
type auditFlags struct {
	cf                             cliFlags
	since, until, user, agent, typ string
	n                              int
	follow                         bool
}

// register adds verb's flags to fs; false for an unknown verb.
func (a *auditFlags) register(fs *flag.FlagSet, verb string, getenv func(string) string) bool {
	switch verb {
	case "verify", "export", "tail":
	default:
		return false
	}
	if verb == "verify" {
		a.cf.register(fs, getenv)
		return true
	}
	a.cf.registerServer(fs, getenv) // export and tail write JSON Lines
	fs.StringVar(&a.since, "since", "", "RFC 3339 time: only events at or after it")
	if verb == "export" {
		fs.StringVar(&a.until, "until", "", "RFC 3339 time: only events before it")
	}
	fs.StringVar(&a.user, "user", "", "only this user's events")
	fs.StringVar(&a.agent, "agent", "", "only events where this agent acts")
	fs.StringVar(&a.typ, "type", "", "only this event type (or type prefix, e.g. token)")
	if verb == "tail" {
		fs.IntVar(&a.n, "n", 20, "how many recent events to show first")
		fs.BoolVar(&a.follow, "follow", false, "keep printing new events")
	}
	return true
}

// auditCmd runs `countersign audit ...` and returns the exit status.
func auditCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	verb, fs, code, done := verbFlags("audit", args, auditUsage, stdout, stderr)
	if done {
		return code
	}
	var a auditFlags
	if !a.register(fs, verb, getenv) {
		fmt.Fprintf(stderr, "countersign audit: unknown command %q\n\n%s", verb, auditUsage)
		return 2
	}
	if pos, err := parseInterleaved(fs, args[1:]); err != nil || len(pos) > 0 {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		if err == nil {
			fmt.Fprintf(stderr, "countersign audit %s: unexpected argument %q\n", verb, pos[0])
		}
		return 2
	}
	c := a.cf.connect(stderr, "countersign audit", 60*time.Second)
	if c == nil {
		return 2
	}
	q := url.Values{}
	for k, v := range map[string]string{"since": a.since, "user": a.user, "agent": a.agent, "type": a.typ} {
		if v != "" {
			q.Set(k, v)
		}
	}
	var err error
	switch verb {
	case "verify":
		err = auditVerify(ctx, c, stdout, a.cf.output == "json")
	case "export":
		err = auditExport(ctx, c, q, a.until, stdout)
	case "tail":
		err = auditTail(ctx, c, q, a.n, a.follow, stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "countersign audit %s: %v\n", verb, err)
		return 1
	}
	return 0
}

var errBroken = errors.New("the audit trail does not verify")

func auditVerify(ctx context.Context, c *adminClient, w io.Writer, asJSON bool) error {
	b, err := c.call(ctx, "POST", "/admin/audit/verify", map[string]any{})
	if err != nil {
		return err
	}
	var rep struct {
		Checked int  `json:"checked"`
		OK      bool `json:"ok"`
		Broken  *struct {
			Stream, EntryID, Reason string
		} `json:"first_broken"`
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		return err
	}
	if asJSON {
		fmt.Fprintln(w, strings.TrimSpace(string(b)))
	} else if rep.OK {
		fmt.Fprintf(w, "OK: %d events, every chain verifies\n", rep.Checked)
	} else {
		fmt.Fprintf(w, "BROKEN after %d events: %s, event %s: %s\n", rep.Checked, rep.Broken.Stream, rep.Broken.EntryID, rep.Broken.Reason)
	}
	if !rep.OK {
		return errBroken
	}
	return nil
}

type auditPage struct {
	Entries []json.RawMessage `json:"entries"`
	Next    string            `json:"next_cursor"`
}

// pages calls emit for every matching entry, oldest first, page by page.
func pages(ctx context.Context, c *adminClient, q url.Values, emit func(json.RawMessage) (bool, error)) (string, error) {
	q.Set("limit", "1000")
	cursor := ""
	for {
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		b, err := c.call(ctx, "GET", "/admin/audit?"+q.Encode(), nil)
		if err != nil {
			return cursor, err
		}
		var p auditPage
		if err := json.Unmarshal(b, &p); err != nil {
			return cursor, err
		}
		for _, e := range p.Entries {
			more, err := emit(e)
			if err != nil || !more {
				return cursor, err
			}
		}
		if p.Next == "" {
			return cursor, nil
		}
		cursor = p.Next
	}
}

func auditExport(ctx context.Context, c *adminClient, q url.Values, until string, w io.Writer) error {
	var end time.Time
	if until != "" {
		t, err := time.Parse(time.RFC3339, until)
		if err != nil {
			return fmt.Errorf("--until must be RFC 3339")
		}
		end = t
	}
	_, err := pages(ctx, c, q, func(e json.RawMessage) (bool, error) {
		if !end.IsZero() {
			var at struct {
				At time.Time `json:"at"`
			}
			if json.Unmarshal(e, &at) == nil && !at.At.Before(end) {
				return true, nil
			}
		}
		_, err := fmt.Fprintf(w, "%s\n", e)
		return true, err
	})
	return err
}

func auditTail(ctx context.Context, c *adminClient, q url.Values, n int, follow bool, w io.Writer) error {
	var all []json.RawMessage
	cursor, err := pages(ctx, c, q, func(e json.RawMessage) (bool, error) {
		all = append(all, e)
		if len(all) > n {
			all = all[1:]
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	for _, e := range all {
		printEvent(w, e)
	}
	for follow {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		b, err := c.call(ctx, "GET", "/admin/audit?"+q.Encode(), nil)
		if err != nil {
			return err
		}
		var p auditPage
		if err := json.Unmarshal(b, &p); err != nil {
			return err
		}
		for _, e := range p.Entries {
			printEvent(w, e)
		}
		if p.Next != "" {
			cursor = p.Next
		}
	}
	return nil
}

func printEvent(w io.Writer, raw json.RawMessage) {
	var e struct {
		At        time.Time `json:"at"`
		Type      string    `json:"type"`
		User      string    `json:"user"`
		Agent     string    `json:"agent"`
		RequestID string    `json:"request_id"`
		Path      string    `json:"path"`
		DeviceID  string    `json:"device_id"`
	}
	_ = json.Unmarshal(raw, &e)
	fmt.Fprintf(w, "%s  %-20s user=%s agent=%s", e.At.UTC().Format(time.RFC3339), e.Type, e.User, e.Agent)
	if e.RequestID != "" {
		fmt.Fprintf(w, " request=%s", e.RequestID)
	}
	if e.Path != "" {
		fmt.Fprintf(w, " path=%s", e.Path)
	}
	if e.DeviceID != "" {
		fmt.Fprintf(w, " device=%s", e.DeviceID)
	}
	fmt.Fprintln(w)
}
