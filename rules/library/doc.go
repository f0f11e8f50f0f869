// Package library holds the custom CEL functions that Countersign rules may
// call, on top of CEL's standard library and the extensions the rules
// package enables (optional types, cel.bind, strings).
//
// What it owns:
//
//   - the declaration of every custom function, with its documentation, its
//     estimated cost (used at load time to refuse expensive rules) and its
//     runtime cost (charged against the per-expression cost limit);
//   - load-time validators for constant arguments (a constant bad CIDR
//     passed to in_networks is a validation error, docs/rules.md "The CEL
//     environment"; a matches() pattern must be a constant of at most
//     MaxRegexInstructions compiled instructions);
//   - the pricing of CEL's own matches() by the compiled size of its
//     pattern rather than its length (regex.go), and the zone cache behind
//     the timestamp accessors that take a time zone (zones.go).
//
// Functions (the list is pinned by a test, see Names):
//
//	in_networks(ip string, cidrs list(string)) -> bool
//
// What it deliberately does not do: it declares no variables and knows
// nothing of the rule file format, the input types, HTTP or Redis. Those
// belong to the rules package.
package library
