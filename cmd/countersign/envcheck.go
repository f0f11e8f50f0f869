package main

import (
	"sort"
	"strings"
)

// testEnv are COUNTERSIGN_* variables the test suite reads; the server
// ignores them without a warning.
var testEnv = []string{"COUNTERSIGN_CHROMIUM", "COUNTERSIGN_SCREENSHOTS", "COUNTERSIGN_BURST", "COUNTERSIGN_BURST_WORKERS"}

// envWarning is an unknown COUNTERSIGN_* variable and the known name
// closest to it.
type envWarning struct{ Name, Closest string }

// unknownEnv returns, in name order, the COUNTERSIGN_* variables of environ
// ("NAME=value" entries) that configure nothing: a misspelt
// COUNTERSIGN_REDIS_URL would otherwise quietly give the in-memory store.
func unknownEnv(environ []string, known []string) []envWarning {
	isKnown := map[string]bool{}
	for _, k := range append(known, testEnv...) {
		isKnown[k] = true
	}
	var out []envWarning
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "COUNTERSIGN_") || isKnown[name] {
			continue
		}
		out = append(out, envWarning{Name: name, Closest: closest(name, known)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// knownEnv lists the environment twins of the server's flags.
func knownEnv() []string {
	var names []string
	for _, d := range (&Config{}).defs() {
		names = append(names, d.env)
	}
	return names
}

// closest is the candidate at the smallest edit distance from name (the
// first of equals).
func closest(name string, candidates []string) string {
	best, bestD := "", -1
	for _, c := range candidates {
		if d := editDistance(name, c); bestD < 0 || d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, in bytes
// (environment names are ASCII).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
