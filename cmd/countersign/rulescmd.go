package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/countersign/countersign/rules"
)

// rulesCmd runs the offline rules commands: validate and test.
func rulesCmd(_ context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) != 2 || (args[0] != "validate" && args[0] != "test") {
		fmt.Fprintln(stderr, "usage: countersign rules validate|test FILE")
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
				fmt.Fprintf(stderr, "%s:%d:%d: %s: %s\n", args[1], p.Line, p.Column, p.Rule, p.Message)
			}
			return 1
		}
		fmt.Fprintf(stderr, "countersign rules: %v\n", err)
		return 1
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
