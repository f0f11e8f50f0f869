package rules

import (
	"math"

	"github.com/google/cel-go/common/operators"
	"github.com/google/cel-go/common/overloads"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/interpreter"
)

// Floating-point arithmetic in CEL follows IEEE 754: 1.0 / 0.0 is +Inf and
// 0.0 / 0.0 is NaN, and both then compare as numbers (NaN is neither above
// nor below a limit, so `!(x / y > 100.0)` would hold). Integer division by
// zero is an error, and an error never approves; finiteDoubles makes every
// arithmetic operation or conversion whose double result is not finite an
// error too, so it fails closed the same way (issue 13 item 5).

// doubleProducers are the functions whose result may be a double computed
// from other values; literals and input values are always finite (JSON has
// no NaN or Inf, and Derive sums finite amounts).
var doubleProducers = map[string]bool{
	operators.Add: true, operators.Subtract: true, operators.Multiply: true,
	operators.Divide: true, operators.Negate: true, overloads.TypeConvertDouble: true,
}

// finiteDoubles wraps every call of a doubleProducers function.
func finiteDoubles(i interpreter.InterpretableV2) (interpreter.InterpretableV2, error) {
	if call, ok := i.(interpreter.InterpretableCall); ok && doubleProducers[call.Function()] {
		return finiteCall{call}, nil
	}
	return i, nil
}

type finiteCall struct{ interpreter.InterpretableCall }

func (c finiteCall) Eval(a interpreter.Activation) ref.Val {
	return finite(c.InterpretableCall.Eval(a))
}

func (c finiteCall) Exec(f *interpreter.ExecutionFrame) ref.Val {
	return finite(c.InterpretableCall.Exec(f))
}

func finite(v ref.Val) ref.Val {
	if d, ok := v.(types.Double); ok && (math.IsNaN(float64(d)) || math.IsInf(float64(d), 0)) {
		return types.NewErr("floating-point result %v is not a finite number (division by zero, overflow or NaN)", float64(d))
	}
	return v
}
