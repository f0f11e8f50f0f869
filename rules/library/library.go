package library

import (
	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/checker"
	"github.com/google/cel-go/interpreter"
)

// Lib returns the environment option that declares every custom function
// with its load-time cost estimate, and adds its runtime cost tracking to
// every program built from the environment (cel.Library).
func Lib() cel.EnvOption { return cel.Lib(lib{}) }

// Names returns the names of the custom functions Lib declares, in the order
// they are documented in the package comment.
func Names() []string { return []string{InNetworks} }

type lib struct{}

// LibraryName implements cel.SingletonLibrary.
func (lib) LibraryName() string { return "countersign.library" }

// CompileOptions implements cel.Library.
func (lib) CompileOptions() []cel.EnvOption {
	return append([]cel.EnvOption{
		inNetworksDecl(),
		cel.CostEstimatorOptions(checker.OverloadCostEstimate(inNetworksOverload, inNetworksEstimate)),
	}, append(zonedAccessorDecls(), regexCostOptions()...)...)
}

// ProgramOptions implements cel.Library.
func (lib) ProgramOptions() []cel.ProgramOption {
	return append([]cel.ProgramOption{
		cel.CostTrackerOptions(interpreter.OverloadCostTracker(inNetworksOverload, inNetworksActual)),
	}, regexTrackerOptions()...)
}
