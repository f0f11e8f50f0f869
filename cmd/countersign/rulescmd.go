package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/countersign/countersign/rules"
)

// rulesCommand runs `countersign rules ...`: validate and test offline,
// the others against a running server (rulescli.go).
func rulesCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "show", "versions", "push", "rollback", "simulate":
			return rulesRemote(ctx, args, getenv, stdout, stderr)
		}
	}
	if len(args) == 0 || (args[0] != "validate" && args[0] != "test") {
		fmt.Fprint(stderr, rulesUsage)
		return 2
	}
	if len(args) != 2 {
		fmt.Fprintf(stderr, "countersign rules %s: takes one FILE, the ruleset YAML file\n\n%s", args[0], rulesUsage)
		return 2
	}
	src, err := os.ReadFile(args[1])
	if err != nil {
		fmt.Fprintf(stderr, "countersign rules: %v\n", err)
		return 1
	}
	rs, err := rules.Load(src)
	if err != nil {
		var ps *rules.Problems
		if errors.As(err, &ps) {
			for _, p := range ps.List {
				fmt.Fprintln(stderr, problemLine(args[1], p.Line, p.Column, p.Rule, p.Message))
			}
			return 1
		}
		fmt.Fprintf(stderr, "countersign rules: %v\n", err)
		return 1
	}
	// validate also times every rule, as the server does before activating.
	if args[0] == "validate" {
		if ps := rs.CheckSpeed(0); len(ps) > 0 {
			for _, p := range ps {
				fmt.Fprintln(stderr, problemLine(args[1], p.Line, p.Column, p.Rule, p.Message))
			}
			return 1
		}
	}
	failed := 0
	results := rs.RunTests()
	for _, r := range results {
		status := "ok  "
		if !r.Passed {
			status = "FAIL"
			failed++
		}
		fmt.Fprintf(stdout, "%s %s\n", status, r.Name)
		if !r.Passed {
			fmt.Fprintf(stdout, "     expected %+v\n     got      %+v\n", r.Expected, r.Got)
		}
	}
	fmt.Fprintf(stdout, "%s: %d rules, %d tests passed, %d failed\n", args[1], len(rs.RuleIDs()), len(results)-failed, failed)
	if failed > 0 {
		return 1
	}
	return 0
}
