package rules

import (
	"fmt"
	"reflect"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
)

// The six input variables are declared as CEL object types whose fields
// are read by hand-written getters (no reflection on the request path):
// misspelt fields are compile errors (docs/rules.md "The CEL environment"), and
// user.attributes / each action.details entry are maps of dyn. The field
// tables below must match the `cel` struct tags; types_test.go checks it.

const typePrefix = "countersign."

type fieldDef struct {
	name string
	typ  *types.Type
	get  func(obj any) any
}

// objectType is one declared object type and its field table.
type objectType struct {
	name    string
	celType *types.Type
	goType  reflect.Type
	fields  map[string]*types.FieldType
	names   []string
}

var (
	dynMap  = types.NewMapType(types.StringType, types.DynType)
	strList = types.NewListType(types.StringType)
)

var (
	agentType = newObjectType("Agent", reflect.TypeFor[Agent](), []fieldDef{
		{"client_id", types.StringType, func(o any) any { return o.(*Agent).ClientID }},
		{"name", types.StringType, func(o any) any { return o.(*Agent).Name }},
		{"owner", types.StringType, func(o any) any { return o.(*Agent).Owner }},
		{"trust_tier", types.StringType, func(o any) any { return o.(*Agent).TrustTier }},
		{"model", types.StringType, func(o any) any { return o.(*Agent).Model }},
		{"version", types.StringType, func(o any) any { return o.(*Agent).Version }},
		{"delegation_depth", types.IntType, func(o any) any { return o.(*Agent).DelegationDepth }},
		{"chain", strList, func(o any) any { return o.(*Agent).Chain }},
	})
	userType = newObjectType("User", reflect.TypeFor[User](), []fieldDef{
		{"id", types.StringType, func(o any) any { return o.(*User).ID }},
		{"email", types.StringType, func(o any) any { return o.(*User).Email }},
		{"timezone", types.StringType, func(o any) any { return o.(*User).Timezone }},
		{"attributes", dynMap, func(o any) any { return o.(*User).Attributes }},
		{"devices", types.IntType, func(o any) any { return o.(*User).Devices }},
	})
	actionType = newObjectType("Action", reflect.TypeFor[Action](), []fieldDef{
		{"scopes", strList, func(o any) any { return o.(*Action).Scopes }},
		{"details", types.NewListType(dynMap), func(o any) any { return o.(*Action).Details }},
		{"types", strList, func(o any) any { return o.(*Action).Types }},
		{"actions", strList, func(o any) any { return o.(*Action).Actions }},
		{"amount", types.DoubleType, func(o any) any { return o.(*Action).Amount }},
		{"currency", types.StringType, func(o any) any { return o.(*Action).Currency }},
		{"binding_message", types.StringType, func(o any) any { return o.(*Action).BindingMessage }},
		{"requested_expiry", types.IntType, func(o any) any { return o.(*Action).RequestedExpiry }},
		{"acr_values", strList, func(o any) any { return o.(*Action).ACRValues }},
	})
	requestType = newObjectType("Request", reflect.TypeFor[Request](), []fieldDef{
		{"kind", types.StringType, func(o any) any { return o.(*Request).Kind }},
		{"ip", types.StringType, func(o any) any { return o.(*Request).IP }},
		{"user_agent", types.StringType, func(o any) any { return o.(*Request).UserAgent }},
		{"time", types.TimestampType, func(o any) any { return o.(*Request).Time }},
		{"authzen", dynMap, func(o any) any { return o.(*Request).AuthZEN }},
	})
	signalsType = newObjectType("Signals", reflect.TypeFor[Signals](), []fieldDef{
		{SignalAgentRequests1h, types.IntType, func(o any) any { return o.(*Signals).AgentRequests1h }},
		{SignalAgentUserRequests1h, types.IntType, func(o any) any { return o.(*Signals).AgentUserRequests1h }},
		{SignalUserPending, types.IntType, func(o any) any { return o.(*Signals).UserPending }},
		{SignalAgentUserDenials24h, types.IntType, func(o any) any { return o.(*Signals).AgentUserDenials24h }},
		{SignalUserSpend24h, types.DoubleType, func(o any) any { return o.(*Signals).UserSpend24h }},
		{SignalAgentUserSpend24h, types.DoubleType, func(o any) any { return o.(*Signals).AgentUserSpend24h }},
		{SignalFirstTime, types.BoolType, func(o any) any { return o.(*Signals).FirstTime }},
	})

	mandateType = newObjectType("Mandate", reflect.TypeFor[Mandate](), []fieldDef{
		{"id", types.StringType, func(o any) any { return o.(*Mandate).ID }},
		{"intent", types.StringType, func(o any) any { return o.(*Mandate).Intent }},
		{"currency", types.StringType, func(o any) any { return o.(*Mandate).Currency }},
		{"remaining_budget", types.DoubleType, func(o any) any { return o.(*Mandate).RemainingBudget }},
		{"remaining_uses", types.IntType, func(o any) any { return o.(*Mandate).RemainingUses }},
		{"ends_at", types.TimestampType, func(o any) any { return o.(*Mandate).EndsAt }},
		{"templates", types.NewListType(dynMap), func(o any) any { return o.(*Mandate).Templates }},
		{"covers", types.BoolType, func(o any) any { return o.(*Mandate).Covers }},
	})

	objectTypes = []*objectType{agentType, userType, actionType, requestType, signalsType, mandateType}
)

// variables maps each CEL variable name to its object type.
var variables = []struct {
	name string
	typ  *objectType
}{
	{"agent", agentType}, {"user", userType}, {"action", actionType},
	{"request", requestType}, {"signals", signalsType}, {"mandate", mandateType},
}

func newObjectType(name string, goType reflect.Type, defs []fieldDef) *objectType {
	full := typePrefix + name
	t := &objectType{
		name:    full,
		celType: types.NewObjectType(full, traits.FieldTesterType|traits.IndexerType),
		goType:  goType,
		fields:  make(map[string]*types.FieldType, len(defs)),
	}
	for _, d := range defs {
		get := d.get
		t.fields[d.name] = &types.FieldType{
			Type:    d.typ,
			GetFrom: func(obj any) (any, error) { return safeGet(get, obj, full) },
			IsSet: func(obj any) bool {
				v, err := safeGet(get, obj, full)
				return err == nil && !isZero(v)
			},
		}
		t.names = append(t.names, d.name)
	}
	return t
}

// safeGet reads one field, turning a wrong object type (which a correct
// checker never produces) into an error instead of a panic.
func safeGet(get func(any) any, obj any, typeName string) (v any, err error) {
	if o, ok := obj.(*object); ok {
		obj = o.v
	}
	defer func() {
		if recover() != nil {
			err = fmt.Errorf("rules: %T is not a %s", obj, typeName)
		}
	}()
	return get(obj), nil
}

func isZero(v any) bool {
	switch x := v.(type) {
	case string:
		return x == ""
	case int64:
		return x == 0
	case float64:
		return x == 0
	case bool:
		return !x
	case []string:
		return len(x) == 0
	case map[string]any:
		return len(x) == 0
	case []map[string]any:
		return len(x) == 0
	case time.Time:
		return x.IsZero()
	}
	return v == nil
}

// object is the CEL value of a bare variable (`agent` used whole, e.g. in
// cel.bind). Field selections on variables do not build one: they read the
// Go struct directly through the field table.
type object struct {
	t       *objectType
	v       any // *Agent, *User, ...
	adapter types.Adapter
}

func (o *object) ConvertToNative(typeDesc reflect.Type) (any, error) {
	if reflect.TypeOf(o.v) == typeDesc {
		return o.v, nil
	}
	return nil, fmt.Errorf("rules: cannot convert %s to %v", o.t.name, typeDesc)
}

func (o *object) ConvertToType(typeVal ref.Type) ref.Val {
	switch {
	case typeVal == types.TypeType:
		return o.t.celType
	case typeVal.TypeName() == o.t.name:
		return o
	}
	return types.NewErr("type conversion error from '%s' to '%s'", o.t.name, typeVal)
}

func (o *object) Equal(other ref.Val) ref.Val {
	oo, ok := other.(*object)
	return types.Bool(ok && oo.t == o.t && reflect.DeepEqual(o.v, oo.v))
}

func (o *object) Type() ref.Type { return o.t.celType }
func (o *object) Value() any     { return o.v }

func (o *object) field(f ref.Val) (*types.FieldType, ref.Val) {
	name, ok := f.(types.String)
	if !ok {
		return nil, types.MaybeNoSuchOverloadErr(f)
	}
	ft, ok := o.t.fields[string(name)]
	if !ok {
		return nil, types.NewErr("no such field: %s", name)
	}
	return ft, nil
}

// Get implements traits.Indexer.
func (o *object) Get(f ref.Val) ref.Val {
	ft, errVal := o.field(f)
	if errVal != nil {
		return errVal
	}
	v, err := ft.GetFrom(o.v)
	if err != nil {
		return types.WrapErr(err)
	}
	return o.adapter.NativeToValue(v)
}

// IsSet implements traits.FieldTester.
func (o *object) IsSet(f ref.Val) ref.Val {
	ft, errVal := o.field(f)
	if errVal != nil {
		return errVal
	}
	return types.Bool(ft.IsSet(o.v))
}

// typeProvider declares the object types on top of the environment's own
// provider.
type typeProvider struct {
	types.Provider
	byName map[string]*objectType
}

func (p *typeProvider) FindStructType(name string) (*types.Type, bool) {
	if t, ok := p.byName[name]; ok {
		return types.NewTypeTypeWithParam(t.celType), true
	}
	return p.Provider.FindStructType(name)
}

func (p *typeProvider) FindStructFieldNames(name string) ([]string, bool) {
	if t, ok := p.byName[name]; ok {
		return append([]string(nil), t.names...), true
	}
	return p.Provider.FindStructFieldNames(name)
}

func (p *typeProvider) FindStructFieldType(name, field string) (*types.FieldType, bool) {
	if t, ok := p.byName[name]; ok {
		ft, ok := t.fields[field]
		return ft, ok
	}
	return p.Provider.FindStructFieldType(name, field)
}

func (p *typeProvider) NewValue(name string, fields map[string]ref.Val) ref.Val {
	if _, ok := p.byName[name]; ok {
		return types.NewErr("%s values cannot be built in a rule", name)
	}
	return p.Provider.NewValue(name, fields)
}

// typeAdapter turns the input structs into CEL objects and hands every
// other value to the environment's adapter.
type typeAdapter struct{ base types.Adapter }

func (a *typeAdapter) NativeToValue(v any) ref.Val {
	switch v.(type) {
	case *Agent:
		return &object{t: agentType, v: v, adapter: a}
	case *User:
		return &object{t: userType, v: v, adapter: a}
	case *Action:
		return &object{t: actionType, v: v, adapter: a}
	case *Request:
		return &object{t: requestType, v: v, adapter: a}
	case *Signals:
		return &object{t: signalsType, v: v, adapter: a}
	case *Mandate:
		return &object{t: mandateType, v: v, adapter: a}
	}
	return a.base.NativeToValue(v)
}

// inputTypes is the environment option declaring the object types and the
// six variables.
func inputTypes() cel.EnvOption {
	return func(e *cel.Env) (*cel.Env, error) {
		p := &typeProvider{Provider: e.CELTypeProvider(), byName: map[string]*objectType{}}
		for _, t := range objectTypes {
			p.byName[t.name] = t
		}
		opts := []cel.EnvOption{
			cel.CustomTypeAdapter(&typeAdapter{base: e.CELTypeAdapter()}),
			cel.CustomTypeProvider(p),
		}
		for _, v := range variables {
			opts = append(opts, cel.Variable(v.name, v.typ.celType))
		}
		var err error
		for _, opt := range opts {
			if e, err = opt(e); err != nil {
				return nil, err
			}
		}
		return e, nil
	}
}
