package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/countersign/countersign/ciba/oauth"
	"github.com/countersign/countersign/ciba/store"
	"github.com/countersign/countersign/rules"
)

// Rules are the administrator's ruleset use cases (docs/api.md "Admin API",
// Rules; issue 8): validate, test, simulate, activate, list versions, roll
// back, and shadow mode. A ruleset is refused unless it compiles and its
// own tests pass; every node then uses an activation within a second
// (package rulesync).
type Rules struct {
	DB *store.DB
	// AdminName is recorded as activated_by (COUNTERSIGN_ADMIN_NAME).
	AdminName string
	// Applier puts a change in force on this node before the call answers
	// (nil: the node follows by pub/sub only).
	Applier Applier
	// RuleTimeLimit is the longest a rule may take on a sample input for
	// its ruleset to be accepted (zero: rules.DefaultRuleTimeLimit).
	RuleTimeLimit time.Duration
}

// Applier puts the stored active ruleset and shadow in force on this node
// (rulesync.Syncer). It is called after the change is committed, so it
// reports nothing: a failure is the applier's to log, and the node still
// follows the stored state on its next pub/sub message or periodic check.
type Applier interface {
	Apply(ctx context.Context)
}

// apply puts a committed change in force here, so that a request this node
// answers after the admin call returns is decided by it (issue 13 item 4).
func (r *Rules) apply(ctx context.Context) {
	if r.Applier != nil {
		r.Applier.Apply(ctx)
	}
}

// Limits of the simulate request.
const (
	MaxSimulateLast     = 1000
	MaxSimulateRequests = 1000
	maxComment          = 1000
)

// RulesView is the active ruleset (GET /admin/rules).
type RulesView struct {
	Version     int64     `json:"version"`
	Ruleset     string    `json:"ruleset"`
	Name        string    `json:"name"`
	Digest      string    `json:"digest"`
	ActivatedAt time.Time `json:"activated_at"`
	ActivatedBy string    `json:"activated_by"`
	Comment     string    `json:"comment"`
}

// Validation is a valid ruleset's answer (POST /admin/rules/validate).
type Validation struct {
	Valid bool `json:"valid"`
	Rules int  `json:"rules"`
	Tests int  `json:"tests"`
}

// TestReport is the answer of POST /admin/rules/test.
type TestReport struct {
	Passed  int                `json:"passed"`
	Failed  int                `json:"failed"`
	Results []rules.TestResult `json:"results"`
}

// VersionRef names a version (PUT /admin/rules, rollback).
type VersionRef struct {
	Version int64 `json:"version"`
}

// ShadowView is the shadow candidate and the differences counted so far
// on every node (GET /admin/rules/shadow).
type ShadowView struct {
	Ruleset string    `json:"ruleset"`
	Name    string    `json:"name"`
	Digest  string    `json:"digest"`
	SetAt   time.Time `json:"set_at"`
	SetBy   string    `json:"set_by"`
	store.ShadowStats
}

type rulesBody struct {
	Ruleset  *string            `json:"ruleset"`
	Comment  string             `json:"comment"`
	Requests *[]json.RawMessage `json:"requests"`
	Last     *int               `json:"last"`
	Version  *int64             `json:"version"`
}

// decodeRules reads a body holding only the members named in allowed.
func decodeRules(body []byte, allowed ...string) (*rulesBody, error) {
	var raw map[string]json.RawMessage
	if err := DecodeStrict(body, &raw); err != nil {
		return nil, err
	}
	for k := range raw {
		if !slices.Contains(allowed, k) {
			return nil, oauth.New(oauth.InvalidRequest, "invalid JSON body: unknown field %q", k)
		}
	}
	var b rulesBody
	if err := DecodeStrict(body, &b); err != nil {
		return nil, err
	}
	return &b, nil
}

func needRuleset(b *rulesBody) (string, error) {
	if b.Ruleset == nil {
		return "", oauth.New(oauth.InvalidRequest, "ruleset is required (the YAML text)")
	}
	return *b.Ruleset, nil
}

// compile loads a ruleset; an invalid one is 400 invalid_ruleset with every
// problem (docs/api.md POST /admin/rules/validate).
func compile(src string) (*rules.Ruleset, error) {
	rs, err := rules.Load([]byte(src))
	var ps *rules.Problems
	if errors.As(err, &ps) {
		return nil, invalid(ps.List)
	}
	return rs, err
}

// runnable compiles a ruleset that may run on live traffic (active or
// shadow): besides compiling, no rule may be slower than RuleTimeLimit on
// the sample inputs (issue 13 item 5: a rule cannot stall a node).
func (r *Rules) runnable(src string) (*rules.Ruleset, error) {
	rs, err := compile(src)
	if err != nil {
		return nil, err
	}
	if ps := rs.CheckSpeed(r.RuleTimeLimit); len(ps) > 0 {
		return nil, invalid(ps)
	}
	return rs, nil
}

func invalid(list []rules.Problem) error {
	desc := fmt.Sprintf("the ruleset has %d problems; the first: %s", len(list), list[0])
	if len(list) == 1 {
		desc = "the ruleset has a problem: " + list[0].String()
	}
	e := oauth.New(oauth.InvalidRuleset, "%s", desc)
	e.Extra = map[string]any{"problems": list}
	return e
}

// tested compiles a ruleset and runs its tests; a failing test is a
// problem (issue 8: a failing test blocks activation).
func (r *Rules) tested(src string) (*rules.Ruleset, []rules.TestResult, error) {
	rs, err := r.runnable(src)
	if err != nil {
		return nil, nil, err
	}
	results := rs.RunTests()
	var list []rules.Problem
	for _, r := range results {
		if !r.Passed {
			list = append(list, rules.Problem{Message: fmt.Sprintf("test %q failed: expected %s, got %s",
				r.Name, expectation(r.Expected), expectation(r.Got))})
		}
	}
	if len(list) > 0 {
		return nil, results, invalid(list)
	}
	return rs, results, nil
}

func expectation(e rules.Expectation) string {
	s := "path " + e.Path
	if e.Level != "" {
		s += ", level " + e.Level
	}
	if e.Rules != nil {
		s += ", rules [" + strings.Join(e.Rules, " ") + "]"
	}
	return s
}

// Active returns the active version (GET /admin/rules).
func (r *Rules) Active(ctx context.Context) (*RulesView, error) {
	a, err := r.DB.ActiveRuleset(ctx)
	if errors.Is(err, store.ErrNotFound) {
		return nil, oauth.New(oauth.NotFound, "no ruleset version has been activated yet")
	}
	if err != nil {
		return nil, err
	}
	return &RulesView{Version: a.Version, Ruleset: string(a.Source), Name: a.Name, Digest: a.Digest,
		ActivatedAt: a.ActivatedAt, ActivatedBy: a.ActivatedBy, Comment: a.Comment}, nil
}

// activeRuleset compiles the active version (the default ruleset when
// none was ever activated).
func (r *Rules) activeRuleset(ctx context.Context) (*rules.Ruleset, error) {
	a, err := r.DB.ActiveRuleset(ctx)
	if errors.Is(err, store.ErrNotFound) {
		return rules.Default(), nil
	}
	if err != nil {
		return nil, err
	}
	rs, err := rules.Load(a.Source)
	if err != nil {
		return nil, fmt.Errorf("admin: active ruleset version %d: %w", a.Version, err)
	}
	return rs, nil
}

// Validate compiles a ruleset and runs its tests (POST
// /admin/rules/validate): 200 when it could be activated, else 400
// invalid_ruleset with every problem and every failing test.
func (r *Rules) Validate(_ context.Context, body []byte) (*Validation, error) {
	b, err := decodeRules(body, "ruleset")
	if err != nil {
		return nil, err
	}
	src, err := needRuleset(b)
	if err != nil {
		return nil, err
	}
	rs, results, err := r.tested(src)
	if err != nil {
		return nil, err
	}
	return &Validation{Valid: true, Rules: len(rs.RuleIDs()), Tests: len(results)}, nil
}

// Test runs a ruleset's tests, the active one's when ruleset is omitted
// (POST /admin/rules/test). Failing tests are a 200 with failed > 0.
func (r *Rules) Test(ctx context.Context, body []byte) (*TestReport, error) {
	b, err := decodeRules(body, "ruleset")
	if err != nil {
		return nil, err
	}
	var rs *rules.Ruleset
	if b.Ruleset == nil {
		rs, err = r.activeRuleset(ctx)
	} else {
		rs, err = compile(*b.Ruleset)
	}
	if err != nil {
		return nil, err
	}
	rep := &TestReport{Results: rs.RunTests()}
	for _, t := range rep.Results {
		if t.Passed {
			rep.Passed++
		} else {
			rep.Failed++
		}
	}
	return rep, nil
}

// Simulate evaluates a candidate next to the active ruleset over given
// inputs or the last N audited decisions (POST /admin/rules/simulate).
// Given inputs get their action fields derived from details and
// request.time defaulted as ruleset tests do (docs/rules.md "Tests in a
// ruleset"); recorded inputs are used as recorded, signals included.
func (r *Rules) Simulate(ctx context.Context, body []byte) (*rules.SimReport, error) {
	b, err := decodeRules(body, "ruleset", "requests", "last")
	if err != nil {
		return nil, err
	}
	src, err := needRuleset(b)
	if err != nil {
		return nil, err
	}
	if (b.Requests == nil) == (b.Last == nil) {
		return nil, oauth.New(oauth.InvalidRequest, "give exactly one of requests (a list of inputs) and last (a number of audited decisions)")
	}
	candidate, err := compile(src)
	if err != nil {
		return nil, err
	}
	var inputs []rules.SimInput
	if b.Requests != nil {
		if inputs, err = givenInputs(*b.Requests); err != nil {
			return nil, err
		}
	} else {
		if *b.Last < 1 || *b.Last > MaxSimulateLast {
			return nil, oauth.New(oauth.InvalidRequest, "last must be between 1 and %d", MaxSimulateLast)
		}
		if inputs, err = r.recordedInputs(ctx, *b.Last); err != nil {
			return nil, err
		}
	}
	active, err := r.activeRuleset(ctx)
	if err != nil {
		return nil, err
	}
	rep := rules.Simulate(active, candidate, inputs)
	return &rep, nil
}

func givenInputs(raw []json.RawMessage) ([]rules.SimInput, error) {
	if len(raw) > MaxSimulateRequests {
		return nil, oauth.New(oauth.InvalidRequest, "at most %d requests", MaxSimulateRequests)
	}
	out := make([]rules.SimInput, len(raw))
	for i, m := range raw {
		if err := DecodeStrict(m, &out[i].Input); err != nil {
			var oe *oauth.Error
			if errors.As(err, &oe) {
				oe.Description = fmt.Sprintf("requests[%d]: %s", i, oe.Description)
			}
			return nil, err
		}
		in := &out[i].Input
		in.Action.Derive()
		if in.Request.Time.IsZero() {
			in.Request.Time = rules.DefaultTestTime
		}
	}
	return out, nil
}

func (r *Rules) recordedInputs(ctx context.Context, n int) ([]rules.SimInput, error) {
	evs, err := r.DB.LastDecisions(ctx, n)
	if err != nil {
		return nil, err
	}
	out := make([]rules.SimInput, 0, len(evs))
	for _, e := range evs {
		if len(e.Input) == 0 {
			continue
		}
		si := rules.SimInput{RequestID: e.RequestID}
		if err := json.Unmarshal(e.Input, &si.Input); err != nil {
			continue // an input recorded by another version of the server
		}
		si.Input.Restore(rules.Recording{Agent: e.Agent, User: e.User, IP: e.IP, At: e.At, Action: e.Action})
		out = append(out, si)
	}
	return out, nil
}

// Activate stores a ruleset as the next version and activates it on every
// node (PUT /admin/rules), once it compiles and its tests pass.
func (r *Rules) Activate(ctx context.Context, body []byte) (*VersionRef, error) {
	b, err := decodeRules(body, "ruleset", "comment")
	if err != nil {
		return nil, err
	}
	src, err := needRuleset(b)
	if err != nil {
		return nil, err
	}
	if len(b.Comment) > maxComment {
		return nil, oauth.New(oauth.InvalidRequest, "comment is over %d bytes", maxComment)
	}
	rs, _, err := r.tested(src)
	if err != nil {
		return nil, err
	}
	v, err := r.DB.SaveRulesetVersion(ctx, store.NewRuleset{Name: rs.Name, Digest: rs.Digest, Source: rs.Source,
		By: r.AdminName, Comment: b.Comment})
	if err != nil {
		return nil, err
	}
	r.apply(ctx)
	return &VersionRef{Version: v}, nil
}

// Versions lists every version, newest first (GET /admin/rules/versions).
func (r *Rules) Versions(ctx context.Context) ([]store.RulesetVersion, error) {
	return r.DB.RulesetVersions(ctx)
}

// Rollback makes a stored version active again (POST
// /admin/rules/rollback), atomically, on every node.
func (r *Rules) Rollback(ctx context.Context, body []byte) (*VersionRef, error) {
	b, err := decodeRules(body, "version")
	if err != nil {
		return nil, err
	}
	if b.Version == nil || *b.Version < 1 {
		return nil, oauth.New(oauth.InvalidRequest, "version is required (a version number from /admin/rules/versions)")
	}
	if err := r.DB.RollbackRuleset(ctx, *b.Version, r.AdminName); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, oauth.New(oauth.NotFound, "no ruleset version %d", *b.Version)
		}
		return nil, err
	}
	r.apply(ctx)
	return &VersionRef{Version: *b.Version}, nil
}

// SetShadow sets a candidate evaluated on live traffic next to the active
// ruleset, never changing a decision (PUT /admin/rules/shadow). It must
// compile; its tests are not required to pass.
func (r *Rules) SetShadow(ctx context.Context, body []byte) (*ShadowView, error) {
	b, err := decodeRules(body, "ruleset")
	if err != nil {
		return nil, err
	}
	src, err := needRuleset(b)
	if err != nil {
		return nil, err
	}
	rs, err := r.runnable(src)
	if err != nil {
		return nil, err
	}
	if err := r.DB.SetShadowRuleset(ctx, store.ShadowRuleset{Name: rs.Name, Digest: rs.Digest, Source: rs.Source, SetBy: r.AdminName}); err != nil {
		return nil, err
	}
	r.apply(ctx)
	return r.Shadow(ctx)
}

// ClearShadow turns shadow mode off (DELETE /admin/rules/shadow).
func (r *Rules) ClearShadow(ctx context.Context) error {
	if err := r.DB.ClearShadowRuleset(ctx, r.AdminName); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return oauth.New(oauth.NotFound, "shadow mode is off")
		}
		return err
	}
	r.apply(ctx)
	return nil
}

// Shadow returns the shadow candidate and the differences counted on
// every node since it was set (GET /admin/rules/shadow). Nodes add their
// counts about once a second.
func (r *Rules) Shadow(ctx context.Context) (*ShadowView, error) {
	sh, st, err := r.DB.Shadow(ctx)
	if errors.Is(err, store.ErrNotFound) {
		return nil, oauth.New(oauth.NotFound, "shadow mode is off")
	}
	if err != nil {
		return nil, err
	}
	return &ShadowView{Ruleset: string(sh.Source), Name: sh.Name, Digest: sh.Digest, SetAt: sh.SetAt, SetBy: sh.SetBy,
		ShadowStats: *st}, nil
}
