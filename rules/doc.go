// Package rules is Countersign's rule language: the CEL environment the
// rules see, the typed input and its size bounds, the YAML ruleset format,
// loading (parse, validate, type-check, estimate cost, compile once),
// evaluation and the tests a ruleset carries. docs/rules.md is the language
// reference; README.md beside this file is the guide to the rules commands.
//
// Key table (what a caller uses):
//
//	Load(src)            -> *Ruleset or *Problems (every problem, with line and column)
//	Default()            -> the embedded default.yaml
//	rs.Evaluate(in)      -> Outcome {level, path, score, rules, checks}, within DefaultDeadline
//	rs.EvaluateContext(ctx, in) -> the same, within ctx's deadline (risk.Engine sets it)
//	rs.CheckSpeed(limit) -> problems for rules slower than limit on sample inputs (validation only)
//	rs.Signals()         -> the signal names the ruleset reads
//	rs.RunTests()        -> one TestResult per `tests:` entry
//	(*Action).Derive()   -> types, actions, amount, currency from details
//
// Decision procedure (docs/rules.md "How a decision is reached"), in order:
// deny > (require_device | acr_values device | a failed expression) > allow
// > score thresholds (medium runs the context checks).
//
// A rule cannot stall a node: matches() patterns are constants priced by
// their compiled size (rules/library), every expression's cost is bounded
// at load, validation times every rule, each evaluation has a deadline, and
// NaN or infinite arithmetic is an error (docs/rules.md "Limits").
//
// What it deliberately does not do: it knows nothing of HTTP, Redis or
// CIBA. It does not read signals (package risk does, and fills
// Input.Signals), it does not store ruleset versions, and it does not
// enforce the input bounds on live requests (the caller should; the runtime
// cost limit still caps an oversized input).
package rules
