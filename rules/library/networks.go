package library

import (
	"fmt"
	"net/netip"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/checker"
	"github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
	"github.com/google/cel-go/interpreter"
)

// InNetworks is the name of the function
//
//	in_networks(ip string, cidrs list(string)) -> bool
//
// true when ip (IPv4 or IPv6; an IPv4-mapped IPv6 address counts as IPv4)
// lies in at least one of the CIDR prefixes. An unparsable ip yields false
// (docs/rules.md "The CEL environment"), so a request whose address cannot be
// read is never taken for a known network. A CIDR that does not parse, or a
// list element that is not a string, is an evaluation error, which the rules
// engine turns into the device path; a constant bad CIDR is refused at load
// by CIDRLiterals. Every CIDR is checked even after a match, so a bad entry
// fails every time rather than only for some addresses.
//
// Cost: InNetworksBaseCost + InNetworksCostPerCIDR per list element, both
// estimated (from the list's size bound) and charged at run time.
const InNetworks = "in_networks"

const (
	// InNetworksBaseCost is the cost of one in_networks call with an empty
	// list: parsing the address.
	InNetworksBaseCost = 1
	// InNetworksCostPerCIDR is the cost per element of the CIDR list:
	// parsing the prefix and testing containment, comparable to a short
	// string scan.
	InNetworksCostPerCIDR = 2

	inNetworksOverload = "in_networks_string_list_string"
)

func inNetworksDecl() cel.EnvOption {
	return cel.Function(InNetworks,
		cel.Overload(inNetworksOverload,
			[]*cel.Type{cel.StringType, cel.ListType(cel.StringType)}, cel.BoolType,
			cel.BinaryBinding(inNetworks)))
}

func inNetworks(ipVal, cidrsVal ref.Val) ref.Val {
	ipStr, ok := ipVal.(types.String)
	if !ok {
		return types.MaybeNoSuchOverloadErr(ipVal)
	}
	list, ok := cidrsVal.(traits.Lister)
	if !ok {
		return types.MaybeNoSuchOverloadErr(cidrsVal)
	}
	ip, ipErr := netip.ParseAddr(string(ipStr))
	ip = ip.Unmap()
	found := false
	it := list.Iterator()
	for it.HasNext() == types.True {
		elem := it.Next()
		s, ok := elem.(types.String)
		if !ok {
			return types.NewErr("%s: CIDR list element is %s, not a string", InNetworks, elem.Type().TypeName())
		}
		prefix, err := ParseCIDR(string(s))
		if err != nil {
			return types.NewErr("%s: %v", InNetworks, err)
		}
		if ipErr == nil && !found && prefix.Contains(ip) {
			found = true
		}
	}
	// docs/rules.md "The CEL environment": false for an unparsable IP.
	return types.Bool(ipErr == nil && found)
}

// ParseCIDR parses one CIDR prefix the way in_networks does ("10.0.0.0/8",
// "2001:db8::/32"); a bare address without a prefix length is refused.
func ParseCIDR(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("bad CIDR %q: want an address and a prefix length like 10.0.0.0/8", s)
	}
	if p.Addr().Is4In6() {
		// A ::ffff:a.b.c.d/n prefix would never contain an unmapped address.
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		if !p.IsValid() {
			return netip.Prefix{}, fmt.Errorf("bad CIDR %q: prefix length too short for an IPv4-mapped address", s)
		}
	}
	return p, nil
}

// inNetworksEstimate is the load-time cost estimate of in_networks.
func inNetworksEstimate(estimator checker.CostEstimator, _ *checker.AstNode, args []checker.AstNode) *checker.CallEstimate {
	if len(args) != 2 {
		return nil
	}
	size := sizeOf(estimator, args[1])
	cost := size.MultiplyByCostFactor(InNetworksCostPerCIDR).Add(checker.FixedCostEstimate(InNetworksBaseCost))
	return &checker.CallEstimate{CostEstimate: cost}
}

// inNetworksActual is the runtime cost of one in_networks call.
func inNetworksActual(args []ref.Val, _ ref.Val) *uint64 {
	cost := uint64(InNetworksBaseCost)
	if len(args) == 2 {
		if s, ok := args[1].(traits.Sizer); ok {
			if n, ok := s.Size().(types.Int); ok && n > 0 {
				cost += uint64(n) * InNetworksCostPerCIDR
			}
		}
	}
	return &cost
}

func sizeOf(estimator checker.CostEstimator, node checker.AstNode) checker.SizeEstimate {
	if s := node.ComputedSize(); s != nil {
		return *s
	}
	if estimator != nil {
		if s := estimator.EstimateSize(node); s != nil {
			return *s
		}
	}
	return checker.UnknownSizeEstimate()
}

// CIDRLiterals returns the load-time validator that reports every constant
// string in a list literal passed as the second argument of in_networks
// that is not a valid CIDR (docs/rules.md: "a constant bad CIDR is a validation
// error"). The issue is reported at the offending literal, so the caller's
// position mapping points at it.
func CIDRLiterals() cel.ASTValidator { return cidrLiterals{} }

type cidrLiterals struct{}

// Name implements cel.ASTValidator.
func (cidrLiterals) Name() string { return "countersign.validator.in_networks_cidrs" }

// Validate implements cel.ASTValidator.
func (cidrLiterals) Validate(_ *cel.Env, _ cel.ValidatorConfig, a *ast.AST, iss *cel.Issues) {
	for _, call := range ast.MatchDescendants(ast.NavigateAST(a), ast.FunctionMatcher(InNetworks)) {
		args := call.AsCall().Args()
		if len(args) != 2 || args[1].Kind() != ast.ListKind {
			continue
		}
		for _, elem := range args[1].AsList().Elements() {
			if elem.Kind() != ast.LiteralKind {
				continue
			}
			s, ok := elem.AsLiteral().(types.String)
			if !ok {
				continue
			}
			if _, err := ParseCIDR(string(s)); err != nil {
				iss.ReportErrorAtID(elem.ID(), "%s: %v", InNetworks, err)
			}
		}
	}
}

var _ interpreter.FunctionTracker = inNetworksActual
var _ checker.FunctionEstimator = inNetworksEstimate
