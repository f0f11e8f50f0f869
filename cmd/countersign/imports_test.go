package main

import (
	"os/exec"
	"strings"
	"testing"
)

const mod = "github.com/countersign/countersign/"

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
