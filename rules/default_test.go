package rules

import (
	"os"
	"path/filepath"
	"testing"
)

func TestDefaultTestsPass(t *testing.T) {
	rs := Default()
	if rs.Name != "default" {
		t.Errorf("Name = %q", rs.Name)
	}
	res := rs.RunTests()
	if len(res) == 0 {
		t.Fatal("the default ruleset has no tests")
	}
	for _, r := range res {
		if !r.Passed {
			t.Errorf("%q: expected %+v, got %+v", r.Name, r.Expected, r.Got)
		}
	}
}

// TestDefaultCoversEveryRow pins, for every row of docs/rules.md "What the
// default ruleset must do", the default.yaml tests that show it and the
// path the row demands.
func TestDefaultCoversEveryRow(t *testing.T) {
	rows := []struct {
		row   string
		tests map[string]string // test name -> path
	}{
		{"agent_action read, any hour, up to 200 an hour: policy", map[string]string{
			"a read of a resource at noon goes by policy":                                   PathPolicy,
			"a read at 3 a.m. from an unknown network, the 200th this hour, goes by policy": PathPolicy,
		}},
		{"payment_initiation of 25,000 EUR: device", map[string]string{
			"a payment of 25000 EUR goes to the phone":                            PathDevice,
			"a payment of 25000 EUR written as a string amount goes to the phone": PathDevice,
		}},
		{"50 EUR, earlier approved payments, known network, noon: policy", map[string]string{
			"a 50 EUR payment by a known agent from a known network at noon goes by policy": PathPolicy,
		}},
		{"the same 50 EUR as a first payment: context (device if the network is unknown)", map[string]string{
			"the first 50 EUR payment by an agent from a known network passes the context checks": PathContext,
			"the first 50 EUR payment by an agent from an unknown network goes to the phone":      PathDevice,
		}},
		{"acr_values=urn:countersign:acr:device: device", map[string]string{
			"a read that asks for the device goes to the phone":          PathDevice,
			"a small payment that asks for the device goes to the phone": PathDevice,
		}},
		{"a payment by an untrusted agent: device", map[string]string{
			"a 5 EUR payment by an untrusted agent goes to the phone": PathDevice,
		}},
		{"more than 3 denials in 24 h, then any payment: device", map[string]string{
			"a 1 EUR payment after four denials goes to the phone": PathDevice,
		}},
		{"1,000 requests in an hour by one agent for one user: device", map[string]string{
			"a read after 1000 requests this hour goes to the phone": PathDevice,
		}},
	}
	byName := map[string]TestResult{}
	for _, r := range Default().RunTests() {
		byName[r.Name] = r
	}
	for _, row := range rows {
		for name, path := range row.tests {
			r, ok := byName[name]
			switch {
			case !ok:
				t.Errorf("row %q: default.yaml has no test %q", row.row, name)
			case r.Expected.Path != path || r.Got.Path != path || !r.Passed:
				t.Errorf("row %q: test %q expects %s and got %s, want %s", row.row, name, r.Expected.Path, r.Got.Path, path)
			}
		}
	}
	// The standard test user of the table.
	for _, tc := range Default().tests {
		if tc.name == "a payment of 25000 EUR goes to the phone" {
			u := tc.input.User
			if u.Timezone != "UTC" || u.Attributes["spending_limit"] != 1000 || tc.input.Agent.TrustTier != TrustStandard {
				t.Errorf("the table's user and agent: %+v, %+v", u, tc.input.Agent)
			}
		}
	}
}

func TestDefaultSourceIsTheFile(t *testing.T) {
	b, err := os.ReadFile("default.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != string(DefaultSource) || string(Default().Source) != string(b) {
		t.Error("DefaultSource differs from default.yaml")
	}
	if first, again := Default(), Default(); first != again {
		t.Error("Default() compiles more than once")
	}
}

// TestExamples loads every rules/examples/*.yaml (the README's worked
// examples) and runs its tests.
func TestExamples(t *testing.T) {
	files, err := filepath.Glob("examples/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 3 {
		t.Fatalf("want the three worked examples, found %v", files)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			rs, err := Load(src)
			if err != nil {
				t.Fatal(err)
			}
			res := rs.RunTests()
			if len(res) < 2 {
				t.Errorf("%d tests, want at least 2", len(res))
			}
			for _, r := range res {
				if !r.Passed {
					t.Errorf("%q: expected %+v, got %+v", r.Name, r.Expected, r.Got)
				}
			}
		})
	}
}
