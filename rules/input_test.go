package rules

import (
	"encoding/json"
	"math"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/cel-go/common/types"
)

func TestDerive(t *testing.T) {
	cases := []struct {
		name     string
		details  []map[string]any
		types    []string
		actions  []string
		amount   float64
		currency string
	}{
		{"none", nil, nil, nil, 0, ""},
		{"numbers of every kind and strings", []map[string]any{
			{"type": "payment_initiation", "action": "transfer", "amount": 10.5, "currency": "EUR"},
			{"type": "payment_initiation", "action": "transfer", "amount": json.Number("20"), "currency": "USD"},
			{"type": "agent_action", "action": "read", "amount": "  30.25 "},
			{"type": "x", "amount": int64(4)},
			{"type": "x", "amount": 5},
		}, []string{"payment_initiation", "agent_action", "x"}, []string{"transfer", "read"}, 69.75, "EUR"},
		{"RFC 9396 instructedAmount", []map[string]any{
			{"type": "payment_initiation", "instructedAmount": map[string]any{"amount": "123.50", "currency": "EUR"}},
		}, []string{"payment_initiation"}, nil, 123.5, "EUR"},
		{"negative amounts count by size", []map[string]any{{"amount": 100}, {"amount": -100}}, nil, nil, 200, ""},
		{"a malformed amount is the largest", []map[string]any{{"amount": "12,50"}}, nil, nil, math.MaxFloat64, ""},
		{"NaN is the largest", []map[string]any{{"amount": "NaN"}}, nil, nil, math.MaxFloat64, ""},
		{"overflow stays finite", []map[string]any{{"amount": 1e308}, {"amount": 1e308}}, nil, nil, math.MaxFloat64, ""},
		{"non-string type and empty action ignored", []map[string]any{{"type": 3, "action": ""}}, nil, nil, 0, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := Action{Details: c.details, Types: []string{"stale"}, Amount: 9}
			a.Derive()
			if !slices.Equal(a.Types, c.types) || !slices.Equal(a.Actions, c.actions) || a.Amount != c.amount || a.Currency != c.currency {
				t.Errorf("got types %v actions %v amount %v currency %q", a.Types, a.Actions, a.Amount, a.Currency)
			}
		})
	}
}

// TestFieldTablesMatchStructTags keeps the hand-written CEL field tables in
// step with the `cel` tags of the input structs.
func TestFieldTablesMatchStructTags(t *testing.T) {
	kinds := map[reflect.Kind]types.Kind{
		reflect.String: types.StringKind, reflect.Int64: types.IntKind, reflect.Float64: types.DoubleKind,
		reflect.Bool: types.BoolKind, reflect.Slice: types.ListKind, reflect.Map: types.MapKind, reflect.Struct: types.TimestampKind,
	}
	for _, ot := range objectTypes {
		var tags []string
		for i := 0; i < ot.goType.NumField(); i++ {
			f := ot.goType.Field(i)
			name := f.Tag.Get("cel")
			tags = append(tags, name)
			ft, ok := ot.fields[name]
			if !ok {
				t.Errorf("%s: field %s (cel %q) is not declared", ot.name, f.Name, name)
				continue
			}
			if ft.Type.Kind() != kinds[f.Type.Kind()] {
				t.Errorf("%s.%s: CEL kind %v for Go %v", ot.name, name, ft.Type.Kind(), f.Type)
			}
			if json := strings.Split(f.Tag.Get("json"), ",")[0]; json != name {
				t.Errorf("%s.%s: json name %q differs", ot.name, name, json)
			}
		}
		names := slices.Clone(ot.names)
		sort.Strings(names)
		sort.Strings(tags)
		if !slices.Equal(names, tags) {
			t.Errorf("%s declares %v, struct has %v", ot.name, names, tags)
		}
	}
	var vars []string
	in := reflect.TypeFor[Input]()
	for i := 0; i < in.NumField(); i++ {
		vars = append(vars, in.Field(i).Tag.Get("cel"))
	}
	for i, v := range variables {
		if vars[i] != v.name || in.Field(i).Type != v.typ.goType {
			t.Errorf("variable %d: %s of %v, Input has %s", i, v.name, v.typ.goType, vars[i])
		}
	}
}

func TestCheckBounds(t *testing.T) {
	ok := benchInput()
	if err := ok.CheckBounds(); err != nil {
		t.Fatalf("a typical input: %v", err)
	}
	cases := map[string]func(*Input){
		"long string":         func(in *Input) { in.Action.BindingMessage = strings.Repeat("x", MaxStringLen+1) },
		"too many scopes":     func(in *Input) { in.Action.Scopes = make([]string, MaxScopes+1) },
		"too long a chain":    func(in *Input) { in.Agent.Chain = make([]string, MaxChain+1) },
		"too many details":    func(in *Input) { in.Action.Details = make([]map[string]any, MaxDetails+1) },
		"nested list":         func(in *Input) { in.User.Attributes["nets"] = make([]any, MaxNested+1) },
		"deep nesting":        func(in *Input) { in.User.Attributes["deep"] = deepMap(maxNestingDepth + 1) },
		"unexpected Go value": func(in *Input) { in.Action.Details[0]["x"] = struct{}{} },
	}
	for name, edit := range cases {
		in := benchInput()
		edit(in)
		if err := in.CheckBounds(); err == nil {
			t.Errorf("%s: within bounds", name)
		}
	}
	multibyte := benchInput()
	multibyte.Action.BindingMessage = strings.Repeat("é", MaxStringLen) // 2 bytes a rune
	if err := multibyte.CheckBounds(); err != nil {
		t.Errorf("%d runes: %v", MaxStringLen, err)
	}
}

func deepMap(depth int) any {
	var v any = "leaf"
	for range depth {
		v = map[string]any{"k": v}
	}
	return v
}
