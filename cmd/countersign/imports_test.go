package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const mod = "github.com/countersign/countersign/"

// allowed lists, for every package of the module, the packages of ours it
// may import directly (test files aside). A package missing here fails
// TestEveryPackageHasImportRule: a new package states where it sits.
var allowed = map[string][]string{
	"rules/library": {},
	"rules":         {"rules/library"},
	"risk":          {"rules"},
	// The leaves: storage, push, protocol errors and log limits know
	// nothing of the protocol above them.
	"notify":               {},
	"ciba/store":           {},
	"ciba/store/redistest": {},
	"ciba/oauth":           {},
	"ciba/ratelog":         {},
	"ciba/token":           {},
	"ciba/deviceapp":       {},
	"ciba/rar":             {"ciba/oauth"},
	"ciba/clientauth":      {"ciba/oauth"},
	"ciba/dpop":            {"ciba/clientauth", "ciba/oauth", "ciba/token"},
	"ciba/resource":        {"ciba/clientauth", "ciba/dpop", "ciba/oauth", "ciba/token"},
	"ciba/agent":           {"ciba/dpop"},
	"ciba/rulesync":        {"ciba/ratelog", "ciba/store", "risk", "rules"},
	"ciba/admin":           {"ciba/clientauth", "ciba/oauth", "ciba/store", "notify", "rules"},
	"ciba": {"ciba/clientauth", "ciba/dpop", "ciba/oauth", "ciba/rar", "ciba/ratelog", "ciba/store", "ciba/token",
		"notify", "risk", "rules"},
	// HTTP handlers decode, call one use case (ciba or ciba/admin) and
	// encode: never the store.
	"ciba/server": {"ciba", "ciba/admin", "ciba/clientauth", "ciba/deviceapp", "ciba/dpop", "ciba/oauth", "ciba/rar",
		"ciba/ratelog", "ciba/token", "risk", "rules"},
	// The MCP gateway is a client of Countersign: HTTP only, through ciba/agent.
	"mcpgateway":         {"ciba/agent", "ciba/oauth", "ciba/rar"},
	"mcpgateway/guard":   {"ciba/resource"},
	"mcpgateway/example": {},
	// The phone stub talks HTTP to the server and imports none of it.
	"mobile-stub":       {"mobile-stub/phone"},
	"mobile-stub/phone": {},
	// The fault run drives the built binary over HTTP, with the stub phone.
	"bench/faults": {"mobile-stub/phone"},
	"cmd/countersign": {"ciba", "ciba/admin", "ciba/agent", "ciba/dpop", "ciba/ratelog", "ciba/resource", "ciba/rulesync",
		"ciba/server", "ciba/store", "ciba/token", "mcpgateway", "mcpgateway/example", "mcpgateway/guard",
		"mobile-stub/phone", "notify", "risk", "rules"},
}

// forbidden lists, per package, the packages of ours it must never reach
// (directly or not): dependencies point one way.
var forbidden = map[string][]string{
	"rules":           {"risk", "ciba", "notify", "ciba/store", "ciba/server"},
	"rules/library":   {"rules", "risk", "ciba"},
	"risk":            {"ciba", "notify", "ciba/store", "ciba/server"},
	"notify":          {"ciba", "risk", "rules", "mobile-stub"},
	"ciba/store":      {"ciba", "risk", "rules", "notify", "ciba/oauth", "ciba/token", "ciba/rar", "ciba/clientauth"},
	"ciba/oauth":      {"ciba", "risk", "rules", "notify", "ciba/store", "ciba/token", "ciba/rar", "ciba/clientauth"},
	"ciba/token":      {"ciba", "risk", "rules", "notify", "ciba/store", "ciba/clientauth", "ciba/server"},
	"ciba/rar":        {"ciba", "risk", "rules", "notify", "ciba/store", "ciba/token", "ciba/server"},
	"ciba/clientauth": {"ciba", "risk", "rules", "notify", "ciba/store", "ciba/token", "ciba/server"},
	"ciba":            {"ciba/server", "mobile-stub", "mobile-stub/phone", "mcpgateway"},
	"ciba/server":     {"mcpgateway", "mcpgateway/guard"},
	// The MCP gateway is a client of Countersign: HTTP only, through ciba/agent.
	"mcpgateway":         {"ciba", "ciba/store", "ciba/server", "risk", "rules", "notify"},
	"mcpgateway/guard":   {"ciba", "ciba/store", "ciba/server", "risk", "rules", "notify", "mcpgateway"},
	"mcpgateway/example": {"ciba", "ciba/store", "ciba/server", "risk", "rules", "notify", "mcpgateway"},
	"mobile-stub":        {"ciba", "risk", "rules", "notify", "ciba/store", "ciba/oauth", "ciba/token", "ciba/rar", "ciba/server"},
	"mobile-stub/phone":  {"ciba", "risk", "rules", "notify", "ciba/store", "ciba/oauth", "ciba/token", "ciba/rar", "ciba/server"},
}

// directImports returns, for every package of the module, the packages of
// ours it imports (test files aside), by path inside the module.
func directImports(t *testing.T) map[string][]string {
	t.Helper()
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, mod+"...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	m := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		pkg := strings.TrimPrefix(f[0], mod)
		m[pkg] = []string{}
		for _, imp := range f[1:] {
			if strings.HasPrefix(imp, mod) {
				m[pkg] = append(m[pkg], strings.TrimPrefix(imp, mod))
			}
		}
	}
	return m
}

func TestEveryPackageHasImportRule(t *testing.T) {
	imports := directImports(t)
	for pkg := range imports {
		if _, ok := allowed[pkg]; !ok {
			t.Errorf("package %s has no rule in allowed: say which of our packages it may import", pkg)
		}
	}
	for pkg := range allowed {
		if _, ok := imports[pkg]; !ok {
			t.Errorf("allowed names %s, which is not a package of the module", pkg)
		}
	}
}

func TestDirectImports(t *testing.T) {
	for pkg, imps := range directImports(t) {
		for _, imp := range imps {
			if rule, ok := allowed[pkg]; ok && !slices.Contains(rule, imp) {
				t.Errorf("%s imports %s, which its rule in allowed does not list", pkg, imp)
			}
		}
	}
}

// echoImporters may import echo; nothing else may.
var echoImporters = map[string]bool{mod + "ciba/server": true, mod + "cmd/countersign": true}

func deps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", mod+pkg).Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	return strings.Fields(string(out))
}

func TestImportDirection(t *testing.T) {
	for pkg, bad := range forbidden {
		ds := deps(t, pkg)
		for _, d := range ds {
			for _, b := range bad {
				if d == mod+b {
					t.Errorf("%s imports %s (forbidden edge)", pkg, b)
				}
			}
		}
	}
}

func TestOnlyServerImportsEcho(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, "github.com/countersign/countersign/...").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		for _, imp := range f[1:] {
			if strings.HasPrefix(imp, "github.com/labstack/echo") && !echoImporters[f[0]] {
				t.Errorf("%s imports echo; only ciba/server may", f[0])
			}
		}
	}
}
