package rules

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/operators"
	"github.com/google/cel-go/common/types/ref"
	"go.yaml.in/yaml/v3"
)

// expr type-checks, cost-checks and compiles one expression. It records
// every problem at its place in the file and returns a nil program when the
// expression is unusable. want is the required output type.
func (l *loader) expr(owner, what string, n *yaml.Node, want *cel.Type) (*cel.Ast, *program) {
	if n.Kind != yaml.ScalarNode || isNull(n) || n.Value == "" {
		l.at(owner, n, "%s must be a CEL expression", what)
		return nil, nil
	}
	src := n.Value
	// docs/rules.md "A ruleset": an expression over 2 KiB is refused.
	if len(src) > MaxExpressionLen {
		l.at(owner, n, "%s is %d bytes long: at most %d are allowed", what, len(src), MaxExpressionLen)
		return nil, nil
	}
	pos := newScalarMap(l.lines, n)
	checked, iss := l.env.Compile(src)
	// Not iss.Err(): it renders every issue with its snippet, quadratic in
	// their number.
	if len(iss.Errors()) > 0 {
		for _, e := range iss.Errors() {
			p := pos.at(src, e.Location.Line(), e.Location.Column())
			l.problems.add(owner, p.line, p.col, "%s: %s", what, e.Message)
		}
		return nil, nil
	}
	if got := checked.OutputType(); !got.IsExactType(want) {
		l.problems.add(owner, pos.start.line, pos.start.col,
			"%s must be a %s expression, not %s", what, want, got)
		return nil, nil
	}
	// Refuse by estimated cost, sized by the input bounds.
	est, err := l.env.EstimateCost(checked, costEstimator{})
	switch {
	case err != nil:
		l.problems.add(owner, pos.start.line, pos.start.col, "%s: cannot estimate its cost: %v", what, err)
		return nil, nil
	case est.Max > MaxEstimatedCost:
		l.problems.add(owner, pos.start.line, pos.start.col,
			"%s: estimated worst-case cost %d is over the limit of %d", what, est.Max, MaxEstimatedCost)
		return nil, nil
	}
	prg, err := l.compile(checked)
	if err != nil {
		l.problems.add(owner, pos.start.line, pos.start.col, "%s: %v", what, err)
		return nil, nil
	}
	return checked, prg
}

// program is one compiled expression, twice: fast runs without a cost
// tracker, for inputs within the declared bounds, where the load-time
// estimate (at most MaxEstimatedCost, which equals RuntimeCostLimit)
// already caps the cost; limited runs under RuntimeCostLimit for any other
// input. The tracker costs about three times the evaluation itself.
type program struct {
	fast, limited cel.Program
	// loops is set when the expression has a comprehension (exists, all,
	// map, filter, cel.bind): only those can be interrupted, so only those
	// pay for ContextEval; others run whole and the deadline is checked
	// between expressions.
	loops bool
}

// interruptEvery is how many comprehension iterations run between two
// looks at the deadline (cel.InterruptCheckFrequency).
const interruptEvery = 64

func (l *loader) compile(checked *cel.Ast) (*program, error) {
	opts := []cel.ProgramOption{cel.EvalOptions(cel.OptOptimize), cel.InterruptCheckFrequency(interruptEvery),
		cel.CustomDecoratorV2(finiteDoubles)}
	fast, err := l.env.Program(checked, opts...)
	if err != nil {
		return nil, err
	}
	// docs/rules.md step 6: runtime cost is limited per expression.
	limited, err := l.env.Program(checked, append(opts, cel.CostLimit(RuntimeCostLimit))...)
	if err != nil {
		return nil, err
	}
	return &program{fast: fast, limited: limited, loops: hasComprehension(checked)}, nil
}

func hasComprehension(a *cel.Ast) bool {
	found := false
	ast.PreOrderVisit(a.NativeRep().Expr(), ast.NewExprVisitor(func(e ast.Expr) {
		found = found || e.Kind() == ast.ComprehensionKind
	}))
	return found
}

// eval runs the expression under ctx (the evaluation's deadline); an
// expression is not started once ctx is done, and one interrupted by it
// fails with deadlineError.
func (p *program) eval(ctx context.Context, act *activation) (ref.Val, error) {
	if ctx.Err() != nil {
		return nil, deadlineError(ctx)
	}
	prg := p.limited
	if act.bounded {
		prg = p.fast
	}
	var v ref.Val
	var err error
	if p.loops {
		v, _, err = prg.ContextEval(ctx, act)
	} else {
		v, _, err = prg.Eval(act)
	}
	if err != nil && ctx.Err() != nil {
		return nil, deadlineError(ctx)
	}
	return v, err
}

// errDeadline is the failure of an expression still running when the
// evaluation's time limit passed (risk.Engine.Deadline, DefaultDeadline).
var errDeadline = errors.New("the rules ran past their time limit")

func deadlineError(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return errDeadline
	}
	return fmt.Errorf("the evaluation was cancelled: %w", context.Cause(ctx))
}

// referencedSignals lists, in SignalNames order, the signals that the
// expressions read: every `signals.NAME` and `signals.?NAME`. When
// `signals` is used whole (bound to a name, compared, ...) every signal is
// needed.
func referencedSignals(asts []*cel.Ast) []string {
	used := map[string]bool{}
	all := false
	for _, a := range asts {
		if a == nil {
			continue
		}
		idents, consumed := 0, 0
		ast.PreOrderVisit(a.NativeRep().Expr(), ast.NewExprVisitor(func(e ast.Expr) {
			switch e.Kind() {
			case ast.IdentKind:
				if e.AsIdent() == "signals" {
					idents++
				}
			case ast.SelectKind:
				sel := e.AsSelect()
				if op := sel.Operand(); op.Kind() == ast.IdentKind && op.AsIdent() == "signals" {
					used[sel.FieldName()] = true
					consumed++
				}
			case ast.CallKind:
				call := e.AsCall()
				args := call.Args()
				if call.FunctionName() == operators.OptSelect && len(args) == 2 &&
					args[0].Kind() == ast.IdentKind && args[0].AsIdent() == "signals" &&
					args[1].Kind() == ast.LiteralKind {
					if s, ok := args[1].AsLiteral().Value().(string); ok {
						used[s] = true
						consumed++
					}
				}
			}
		}))
		if idents > consumed {
			all = true
		}
	}
	var out []string
	for _, name := range SignalNames() {
		if all || used[name] {
			out = append(out, name)
		}
	}
	return out
}
