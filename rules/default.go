package rules

import (
	_ "embed"
	"sync"
)

// DefaultSource is rules/default.yaml, the ruleset active when nothing else
// is (docs/rules.md "What the default ruleset must do").
//
//go:embed default.yaml
var DefaultSource []byte

var (
	defaultOnce sync.Once
	defaultRS   *Ruleset
)

// Default returns the embedded default ruleset, compiled once. It panics
// only if the embedded file does not load, which its tests rule out.
func Default() *Ruleset {
	defaultOnce.Do(func() {
		rs, err := Load(DefaultSource)
		if err != nil {
			panic("rules: embedded default.yaml: " + err.Error())
		}
		defaultRS = rs
	})
	return defaultRS
}
