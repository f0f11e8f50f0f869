package ciba

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/countersign/countersign/ciba/oauth"
	"github.com/countersign/countersign/risk"
	"github.com/countersign/countersign/rules"
)

func TestEvaluationOfRequiresTheThreeObjects(t *testing.T) {
	const sub, act, res = `"subject":{"type":"user","id":"alice"}`, `"action":{"name":"read"}`, `"resource":{"type":"doc","id":"d1"}`
	for _, c := range []struct{ body, defaults, problem string }{
		{"{" + sub + "," + act + "," + res + "}", "{}", ""},
		{"{" + act + "," + res + "}", "{" + sub + "}", ""}, // §"Default values"
		{"{" + act + "," + res + "}", "{}", "subject"},
		{"{" + sub + "," + res + "}", "{}", "action"},
		{"{" + sub + "," + act + "}", "{}", "resource"},
		{`{"subject":{"type":"user","id":""},` + act + "," + res + "}", "{}", "subject"},
		{`{"subject":{"type":"user","id":7},` + act + "," + res + "}", "{}", "subject"},
		{`{"subject":"alice",` + act + "," + res + "}", "{}", "subject must be an object"},
		{`{"action":{"name":""},` + sub + "," + res + "}", "{}", "action"},
		{`{"context":[],` + sub + "," + act + "," + res + "}", "{}", "context must be an object"},
		{`{"subject":{"type":"user","id":"a","properties":"x"},` + act + "," + res + "}", "{}", "properties"},
	} {
		var body, defaults map[string]any
		if err := json.Unmarshal([]byte(c.body), &body); err != nil {
			t.Fatal(err)
		}
		_ = json.Unmarshal([]byte(c.defaults), &defaults)
		ev, err := evaluationOf(body, defaults)
		if c.problem == "" {
			if err != nil || ev.Context == nil || ev.Subject["id"] != "alice" {
				t.Errorf("%s: %v %+v", c.body, err, ev)
			}
			continue
		}
		var oe *oauth.Error
		if !errors.As(err, &oe) || oe.Code != oauth.InvalidRequest || !strings.Contains(oe.Description, c.problem) {
			t.Errorf("%s: want invalid_request about %q, got %v", c.body, c.problem, err)
		}
	}
}

func TestDecisionOfMapsEveryPath(t *testing.T) {
	match := func(id, decision, reason string) rules.Match {
		return rules.Match{ID: id, Decision: decision, Reason: reason}
	}
	for _, c := range []struct {
		path    string
		matches []rules.Match
		want    string
	}{
		{rules.PathPolicy, nil, `{"decision":true}`},
		{rules.PathContext, []rules.Match{match("first", "", "First time.")}, `{"decision":true}`},
		{rules.PathDeny, []rules.Match{match("no-delete", "deny", "Never.")},
			`{"decision":false,"context":{"reason_admin":{"403":"rule no-delete: Never."},"reason_user":{"403":"Never."}}}`},
		{rules.PathDevice, []rules.Match{match("big", "require_device", "Too big.")},
			`{"decision":false,"context":{"acr":"urn:countersign:acr:device","approval_required":true,"reason_admin":{"403":"the user must approve on their phone: big"},"reason_user":{"403":"Too big."}}}`},
		// An unknown path fails closed.
		{"", nil, `{"decision":false,"context":{"acr":"urn:countersign:acr:device","approval_required":true,"reason_admin":{"403":"the user must approve on their phone: "}}}`},
	} {
		d := risk.Decision{Outcome: rules.Outcome{Path: c.path, Rules: c.matches}}
		b, _ := json.Marshal(decisionOf(d))
		if string(b) != c.want {
			t.Errorf("%s: %s\nwant %s", c.path, b, c.want)
		}
	}
}

func TestApprovalKeyIsTheSameEvaluation(t *testing.T) {
	ev := func(ctx map[string]any) evaluation {
		return evaluation{Subject: map[string]any{"type": "user", "id": "alice"}, Action: map[string]any{"name": "pay"},
			Resource: map[string]any{"type": "acct", "id": "1"}, Context: ctx}
	}
	a := approvalKey("gw", "alice", ev(map[string]any{"binding_message": "Pay 5", "request_approval": true}))
	b := approvalKey("gw", "alice", ev(map[string]any{"request_approval": true, "binding_message": "Pay 5"}))
	if a != b {
		t.Fatal("member order changed the key")
	}
	for _, other := range []string{
		approvalKey("gw2", "alice", ev(map[string]any{"binding_message": "Pay 5", "request_approval": true})),
		approvalKey("gw", "bob", ev(map[string]any{"binding_message": "Pay 5", "request_approval": true})),
		approvalKey("gw", "alice", ev(map[string]any{"binding_message": "Pay 6", "request_approval": true})),
	} {
		if other == a {
			t.Fatal("a different evaluation has the same key")
		}
	}
}
