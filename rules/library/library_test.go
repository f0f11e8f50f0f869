package library

import (
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/checker"
)

func newEnv(t *testing.T, withLib bool) *cel.Env {
	t.Helper()
	opts := []cel.EnvOption{
		cel.Variable("ip", cel.StringType),
		cel.Variable("nets", cel.ListType(cel.StringType)),
		cel.Variable("attrs", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("t", cel.TimestampType),
		cel.Variable("tz", cel.StringType),
	}
	if withLib {
		opts = append(opts, Lib(), cel.ASTValidators(CIDRLiterals()))
	}
	env, err := cel.NewEnv(opts...)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// TestFunctionNames pins the exact set of functions the library adds to
// CEL's standard environment.
func TestFunctionNames(t *testing.T) {
	base, lib := newEnv(t, false), newEnv(t, true)
	var added []string
	for name := range lib.Functions() {
		if _, ok := base.Functions()[name]; !ok {
			added = append(added, name)
		}
	}
	sort.Strings(added)
	want := []string{"in_networks"}
	if !slices.Equal(added, want) || !slices.Equal(Names(), want) {
		t.Errorf("added %v, Names() %v, want %v", added, Names(), want)
	}
}

func eval(t *testing.T, env *cel.Env, expr string, vars map[string]any) (any, error) {
	t.Helper()
	ast, iss := env.Compile(expr)
	if iss.Err() != nil {
		t.Fatalf("%s: %v", expr, iss.Err())
	}
	prg, err := env.Program(ast, cel.CostLimit(1000))
	if err != nil {
		t.Fatal(err)
	}
	v, _, err := prg.Eval(vars)
	if err != nil {
		return nil, err
	}
	return v.Value(), nil
}

func TestInNetworks(t *testing.T) {
	env := newEnv(t, true)
	nets := []string{"10.0.0.0/8", "2001:db8::/32", "::ffff:192.168.0.0/112"}
	cases := []struct {
		ip   string
		want bool
	}{
		{"10.1.2.3", true},
		{"11.1.2.3", false},
		{"2001:db8::1", true},
		{"2001:db9::1", false},
		{"::ffff:10.0.0.1", true}, // IPv4-mapped counts as IPv4
		{"192.168.4.4", true},     // an IPv4-mapped prefix matches plain IPv4
		{"not an ip", false},      // docs/rules.md: false for an unparsable IP
		{"", false},
		{"10.1.2.3/8", false},
	}
	for _, c := range cases {
		got, err := eval(t, env, "in_networks(ip, nets)", map[string]any{"ip": c.ip, "nets": nets})
		if err != nil || got != c.want {
			t.Errorf("in_networks(%q) = %v, %v; want %v", c.ip, got, err, c.want)
		}
	}
	// A bad CIDR at run time is an error, whatever the IP.
	for _, ip := range []string{"10.1.2.3", "bad"} {
		_, err := eval(t, env, "in_networks(ip, attrs.nets)", map[string]any{"ip": ip,
			"attrs": map[string]any{"nets": []any{"10.0.0.0/8", "10.0.0.1"}}})
		if err == nil || !strings.Contains(err.Error(), `bad CIDR "10.0.0.1"`) {
			t.Errorf("ip %q: err = %v", ip, err)
		}
	}
	_, err := eval(t, env, "in_networks(ip, attrs.nets)", map[string]any{"ip": "10.0.0.1",
		"attrs": map[string]any{"nets": []any{"10.0.0.0/8", 7}}})
	if err == nil || !strings.Contains(err.Error(), "not a string") {
		t.Errorf("non-string element: err = %v", err)
	}
}

func TestCIDRLiteralsValidator(t *testing.T) {
	env := newEnv(t, true)
	_, iss := env.Compile("in_networks(ip, ['10.0.0.0/8', 'nope', ip, '1.2.3.4/33'])")
	if iss.Err() == nil {
		t.Fatal("bad constant CIDRs accepted")
	}
	var cols []int
	for _, e := range iss.Errors() {
		if !strings.Contains(e.Message, "bad CIDR") {
			t.Errorf("message %q", e.Message)
		}
		cols = append(cols, e.Location.Column())
	}
	if !slices.Equal(cols, []int{31, 43}) {
		t.Errorf("error columns %v, want [31 43] (the 'nope' and '1.2.3.4/33' literals)", cols)
	}
	if _, iss := env.Compile("in_networks(ip, ['10.0.0.0/8', ip])"); iss.Err() != nil {
		t.Errorf("good CIDRs refused: %v", iss.Err())
	}
}

type fixedSize struct{ n uint64 }

func (f fixedSize) EstimateSize(checker.AstNode) *checker.SizeEstimate {
	return &checker.SizeEstimate{Min: 0, Max: f.n}
}
func (fixedSize) EstimateCallCost(string, string, *checker.AstNode, []checker.AstNode) *checker.CallEstimate {
	return nil
}

func TestInNetworksCost(t *testing.T) {
	env := newEnv(t, true)
	ast, iss := env.Compile("in_networks(ip, nets)")
	if iss.Err() != nil {
		t.Fatal(iss.Err())
	}
	est, err := env.EstimateCost(ast, fixedSize{n: 10})
	if err != nil {
		t.Fatal(err)
	}
	// Two variable reads (1 each) plus the call: base + 10 CIDRs.
	if want := uint64(2 + InNetworksBaseCost + 10*InNetworksCostPerCIDR); est.Max != want {
		t.Errorf("estimated max %d, want %d", est.Max, want)
	}
	prg, err := env.Program(ast, cel.CostLimit(1000))
	if err != nil {
		t.Fatal(err)
	}
	_, det, err := prg.Eval(map[string]any{"ip": "10.0.0.1", "nets": []string{"10.0.0.0/8", "11.0.0.0/8", "12.0.0.0/8"}})
	if err != nil {
		t.Fatal(err)
	}
	if want := uint64(2 + InNetworksBaseCost + 3*InNetworksCostPerCIDR); *det.ActualCost() != want {
		t.Errorf("actual cost %d, want %d", *det.ActualCost(), want)
	}
}

// TestZonedAccessorsMatchCEL compares the cached-zone accessors with what
// CEL computes for the same instant in Go.
func TestZonedAccessorsMatchCEL(t *testing.T) {
	env := newEnv(t, true)
	ts := time.Date(2026, 3, 29, 0, 30, 15, 250e6, time.UTC) // Berlin switches to summer time this night
	for _, tz := range []string{"UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "+05:30", "-08:00"} {
		loc, err := parseZone(tz)
		if err != nil {
			t.Fatal(err)
		}
		lt := ts.In(loc)
		want := []int64{int64(lt.Year()), int64(lt.Month()) - 1, int64(lt.YearDay()) - 1, int64(lt.Day()) - 1,
			int64(lt.Day()), int64(lt.Weekday()), int64(lt.Hour()), int64(lt.Minute()), int64(lt.Second()), 250}
		for i, a := range zonedAccessors {
			for range 2 { // the second call is served from the cache
				got, err := eval(t, env, "t."+a.function+"(tz)", map[string]any{"t": ts, "tz": tz})
				if err != nil || got != want[i] {
					t.Errorf("%s(%q) = %v, %v; want %d", a.function, tz, got, err, want[i])
				}
			}
		}
	}
	for _, bad := range []string{"Mars/Olympus", "+25:00", "+01:61", "x:y"} {
		if _, err := eval(t, env, "t.getHours(tz)", map[string]any{"t": ts, "tz": bad}); err == nil {
			t.Errorf("zone %q accepted", bad)
		}
	}
}
