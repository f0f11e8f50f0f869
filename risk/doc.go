// Package risk turns an agent request into a Decision: it reads the signals
// the active ruleset references (one SignalReader call, skipped when the
// rules read none), fills them into the input and evaluates the rules
// (docs/rules.md "How a decision is reached").
//
// What it owns: the Engine, which holds the active ruleset (and an optional
// shadow ruleset) in atomic pointers, so a rules activation swaps them
// without a lock on the request path; and the fail-closed rule for signals:
// when they cannot be read, the request goes to the device, never by policy.
//
// What it deliberately does not do: it knows nothing of HTTP or CIBA, and
// nothing of Redis: SignalReader is the one method it needs, declared here
// where it is consumed and implemented by the store. It
// does not move counters (the store does when a request is approved), and it
// does not load, store or version rulesets (package rules loads them; the
// admin use cases store them).
package risk
