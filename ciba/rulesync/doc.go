// Package rulesync keeps a node's risk engine on the active ruleset
// version stored in Redis (issue 8 "Every node at once").
//
// Start activates the node's initial ruleset (the --rules file, else the
// embedded default) as version 1 when no version is active yet, loads the
// active version, and then follows changes:
//
//	pub/sub message on <prefix>rules  -> re-read and swap at once
//	(re)subscription confirmed        -> re-read (messages may have been missed)
//	every Options.Interval (5 s)      -> re-read (a lost message cannot leave a node behind)
//
// A re-read compares the stored active version and shadow digest with the
// ones in use (one pipelined round trip) and loads only what changed. The
// new ruleset is compiled off the request path and swapped into the
// risk.Engine with an atomic pointer: requests never wait on a lock. A
// version that does not compile on this node (an older binary, say) is
// logged and the node keeps the ruleset it runs (fail safe), and Ready
// reports it.
//
// Shadow mode: the shadow candidate stored in Redis is set on the engine
// the same way. Syncer.Decision (an Observer of decisions) counts, per
// shadow digest, the requests evaluated and those whose path the shadow
// would have changed, and adds them to Redis every Options.FlushInterval,
// so that GET /admin/rules/shadow shows the sum over every node.
//
// What it deliberately does not do: validate or test rulesets (admins do
// that before activation, package admin), serve HTTP, or decide anything.
package rulesync
