package rules

import (
	"strings"
	"sync"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/checker"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/ext"

	"github.com/countersign/countersign/rules/library"
)

// Input bounds. The cost estimator sizes every list, map and string of the
// input by these bounds (without them every list looks
// infinite, kubernetes#120973). Callers should refuse or trim live input
// beyond them; if they do not, the runtime cost limit still stops an
// expression that runs long.
const (
	MaxStringLen     = 1024 // characters in any string of the input
	MaxScopes        = 32   // action.scopes
	MaxDetails       = 16   // action.details; also action.types and action.actions
	MaxDetailEntries = 32   // keys in one action.details entry
	MaxChain         = 16   // agent.chain
	MaxACRValues     = 8    // action.acr_values
	MaxAttributes    = 64   // keys in user.attributes
	// MaxNested is the size of any list or map nested inside
	// user.attributes or an action.details entry.
	MaxNested = 64
)

// Ruleset limits (docs/rules.md "Limits").
const (
	MaxRules         = 200  // rules in one ruleset
	MaxChecks        = 50   // context checks in one ruleset
	MaxTests         = 500  // tests in one ruleset
	MaxExpressionLen = 2048 // bytes in one expression (2 KiB)
	// MaxYAMLNodes bounds the YAML tree of a ruleset once its aliases are
	// expanded; the largest ruleset the other limits allow has far fewer.
	MaxYAMLNodes = 100_000
	// MaxEstimatedCost is the largest worst-case cost, estimated at load
	// with the input bounds above, that one expression may have.
	MaxEstimatedCost = 100_000
	// RuntimeCostLimit stops one expression's evaluation once its actual
	// cost passes it; the expression then fails (and the request goes to
	// the device, docs/rules.md "How a decision is reached" step 6).
	RuntimeCostLimit = 100_000
	// DefaultDeadline is the time limit of one evaluation of a whole
	// ruleset (every rule, reason and context check) for one request, when
	// the caller sets none (risk.Engine.Deadline). Past it the expression
	// running fails, the rest are not evaluated, and the request goes to
	// the device (docs/rules.md "Limits").
	DefaultDeadline = 50 * time.Millisecond
	// MaxScore bounds the absolute value of a score and of the thresholds,
	// so that a sum over MaxRules rules cannot overflow.
	MaxScore = 1_000_000
)

// The fast path of Evaluate (no cost tracker for inputs within the bounds)
// relies on every admitted expression's estimate being within the runtime
// limit; this fails to compile if the constants ever disagree.
const _ = uint64(RuntimeCostLimit - MaxEstimatedCost)

var (
	envOnce sync.Once
	celEnv  *cel.Env
	envErr  error
)

// environment returns the one CEL environment every ruleset compiles
// against (docs/rules.md "The CEL environment").
func environment() (*cel.Env, error) {
	envOnce.Do(func() {
		celEnv, envErr = cel.NewEnv(
			cel.OptionalTypes(),
			cel.CrossTypeNumericComparisons(true),
			cel.DefaultUTCTimeZone(true),
			ext.Bindings(),
			ext.Strings(),
			library.Lib(),
			// cel.ExtendedValidations() but for its regex check, which
			// library.RegexLiterals does (and prices) itself.
			cel.ASTValidators(cel.ValidateDurationLiterals(), cel.ValidateTimestampLiterals(),
				cel.ValidateHomogeneousAggregateLiterals(), library.CIDRLiterals(), library.RegexLiterals()),
			inputTypes(),
		)
	})
	return celEnv, envErr
}

// costEstimator sizes input values by the declared bounds. A value it
// cannot place (a dyn member of attributes, a function result) gets the
// largest bound of any input collection or string, which is conservative.
type costEstimator struct{}

var boundsByPath = map[string]uint64{
	"agent.chain":              MaxChain,
	"user.attributes":          MaxAttributes,
	"action.scopes":            MaxScopes,
	"action.details":           MaxDetails,
	"action.details.@items":    MaxDetailEntries,
	"action.types":             MaxDetails,
	"action.actions":           MaxDetails,
	"action.acr_values":        MaxACRValues,
	"request.authzen":          4, // subject, action, resource, context
	"mandate.templates":        MaxDetails,
	"mandate.templates.@items": MaxDetailEntries,
}

func (costEstimator) EstimateSize(node checker.AstNode) *checker.SizeEstimate {
	if path := node.Path(); len(path) > 0 {
		if n, ok := boundsByPath[strings.Join(path, ".")]; ok {
			return &checker.SizeEstimate{Min: 0, Max: n}
		}
	}
	max := uint64(MaxStringLen)
	if t := node.Type(); t != nil {
		switch t.Kind() {
		case types.ListKind, types.MapKind:
			max = MaxNested
		}
	}
	return &checker.SizeEstimate{Min: 0, Max: max}
}

func (costEstimator) EstimateCallCost(string, string, *checker.AstNode, []checker.AstNode) *checker.CallEstimate {
	return nil // standard functions use CEL's estimates; custom ones declare theirs (rules/library)
}
