package library

import (
	"fmt"
	"math"
	"regexp/syntax"
	"sync"
	"sync/atomic"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/checker"
	"github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/overloads"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/interpreter"
)

// CEL's matches() (`s.matches(pattern)`, `matches(s, pattern)`) is priced
// here by the size of the compiled pattern, not by its length: RE2 matching
// costs the length of the text times the number of instructions of the
// compiled program, and a short pattern such as `(\pL|\pN){1000}` compiles
// to thousands. Three rules follow (issue 13 item 5):
//
//   - the pattern must be a constant string, so that its size is known when
//     the ruleset is loaded (RegexLiterals refuses any other);
//   - it may compile to at most MaxRegexInstructions instructions;
//   - a call is estimated, and charged at run time, (length of the text + 1)
//     × instructions × RegexCostPerInstruction.
//
// No other function of the environment takes a regular expression (the
// strings extension has none, and CEL's regex extension is not enabled).

const (
	// MaxRegexInstructions is the largest compiled program (instructions
	// of Go's regexp/syntax, after simplification) a matches() pattern may
	// have. Matching a 1,024-character text against 256 instructions takes
	// about a millisecond on one core.
	MaxRegexInstructions = 256
	// RegexCostPerInstruction is the cost of stepping one character through
	// one instruction, in CEL cost units (CEL charges 0.1 per character of
	// a plain string scan).
	RegexCostPerInstruction = 0.25
)

// RegexInstructions returns the number of instructions pattern compiles to
// with the syntax Go's regexp (and so CEL) uses.
func RegexInstructions(pattern string) (int, error) {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return 0, err
	}
	prog, err := syntax.Compile(re.Simplify())
	if err != nil {
		return 0, err
	}
	return len(prog.Inst), nil
}

// maxCachedPatterns bounds the cache of instruction counts; patterns are
// constants of loaded rulesets, so it is not reached in practice.
const maxCachedPatterns = 4096

var (
	patternCache sync.Map // string -> int
	patternCount atomic.Int64
)

type compiled struct {
	n   int
	err error
}

// instructions is RegexInstructions, cached: a ruleset repeats its
// patterns, and every node compiles the same rulesets.
func instructions(pattern string) (int, error) {
	if c, ok := patternCache.Load(pattern); ok {
		return c.(compiled).n, c.(compiled).err
	}
	n, err := RegexInstructions(pattern)
	if patternCount.Add(1) <= maxCachedPatterns {
		patternCache.Store(pattern, compiled{n, err})
	}
	return n, err
}

// cachedInstructions is instructions for pricing; a bad pattern is priced
// at nothing, as matches() reports it.
func cachedInstructions(pattern string) int {
	n, _ := instructions(pattern)
	return n
}

func regexCostOptions() []cel.EnvOption {
	return []cel.EnvOption{cel.CostEstimatorOptions(
		checker.OverloadCostEstimate(overloads.Matches, matchesEstimate),
		checker.OverloadCostEstimate(overloads.MatchesString, matchesEstimate),
	)}
}

func regexTrackerOptions() []cel.ProgramOption {
	return []cel.ProgramOption{cel.CostTrackerOptions(
		interpreter.OverloadCostTracker(overloads.Matches, matchesActual),
		interpreter.OverloadCostTracker(overloads.MatchesString, matchesActual),
	)}
}

// matchesEstimate prices a matches() call whose pattern is a constant; a
// call with any other pattern is refused by RegexLiterals before cost is
// estimated, and is given CEL's own estimate here.
func matchesEstimate(estimator checker.CostEstimator, target *checker.AstNode, args []checker.AstNode) *checker.CallEstimate {
	text, pattern, ok := matchesOperands(target, args)
	if !ok || pattern.Expr().Kind() != ast.LiteralKind {
		return nil
	}
	p, ok := pattern.Expr().AsLiteral().(types.String)
	if !ok {
		return nil
	}
	n := cachedInstructions(string(p))
	size := sizeOf(estimator, text).Add(checker.SizeEstimate{Min: 1, Max: 1})
	cost := size.MultiplyByCostFactor(RegexCostPerInstruction * float64(n))
	return &checker.CallEstimate{CostEstimate: cost.Add(checker.FixedCostEstimate(1))}
}

func matchesOperands(target *checker.AstNode, args []checker.AstNode) (text, pattern checker.AstNode, ok bool) {
	switch {
	case target != nil && len(args) == 1:
		return *target, args[0], true
	case target == nil && len(args) == 2:
		return args[0], args[1], true
	}
	return nil, nil, false
}

// matchesActual is the runtime cost of one matches() call; args are the
// text and the pattern in that order for both overloads.
func matchesActual(args []ref.Val, _ ref.Val) *uint64 {
	cost := uint64(1)
	if len(args) == 2 {
		text, ok1 := args[0].(types.String)
		pattern, ok2 := args[1].(types.String)
		if ok1 && ok2 {
			n := float64(cachedInstructions(string(pattern)))
			c := math.Ceil(float64(len(text)+1) * n * RegexCostPerInstruction)
			cost += uint64(c)
		}
	}
	return &cost
}

// RegexLiterals returns the load-time validator that requires the pattern
// of every matches() call to be a constant, valid regular expression of at
// most MaxRegexInstructions compiled instructions. A pattern computed at run
// time (from the request or a user attribute) cannot be priced, and would
// let the request's author choose how long every node spends on it. The
// issue is reported at the pattern.
func RegexLiterals() cel.ASTValidator { return regexLiterals{} }

type regexLiterals struct{}

// Name implements cel.ASTValidator.
func (regexLiterals) Name() string { return "countersign.validator.matches_patterns" }

// Validate implements cel.ASTValidator.
func (regexLiterals) Validate(_ *cel.Env, _ cel.ValidatorConfig, a *ast.AST, iss *cel.Issues) {
	for _, call := range ast.MatchDescendants(ast.NavigateAST(a), ast.FunctionMatcher(overloads.Matches)) {
		c := call.AsCall()
		var pattern ast.Expr
		switch args := c.Args(); {
		case c.IsMemberFunction() && len(args) == 1:
			pattern = args[0]
		case !c.IsMemberFunction() && len(args) == 2:
			pattern = args[1]
		default:
			continue
		}
		if msg := patternProblem(pattern); msg != "" {
			iss.ReportErrorAtID(pattern.ID(), "%s", msg)
		}
	}
}

func patternProblem(pattern ast.Expr) string {
	if pattern.Kind() != ast.LiteralKind {
		return "matches() needs a constant pattern (a string literal): a computed pattern cannot be priced"
	}
	s, ok := pattern.AsLiteral().(types.String)
	if !ok {
		return "" // the type checker reports it
	}
	n, err := instructions(string(s))
	if err != nil {
		return fmt.Sprintf("matches() pattern is not a valid regular expression: %v", err)
	}
	if n > MaxRegexInstructions {
		return fmt.Sprintf("matches() pattern compiles to %d instructions: at most %d are allowed", n, MaxRegexInstructions)
	}
	return ""
}
