package main

import (
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// The linearizability model: one CIBA request's lifecycle, checked per
// auth_req_id. The client records every call it makes about a request with
// its invoke and return times; porcupine searches for an order of those
// calls, each taking effect at one instant between its invoke and return,
// that this model accepts. No such order means the server did something the
// lifecycle does not allow (a second token, a token after a denial, a
// revoked token still active, an approval that vanished).

// Operation kinds.
const (
	opAuthorize  = "authorize"  // POST /bc-authorize, answered 200
	opDecide     = "decide"     // POST /device/requests/{id}/decision
	opPoll       = "poll"       // POST /token with the CIBA grant
	opPushed     = "pushed"     // a push-mode callback received
	opPinged     = "pinged"     // a ping-mode callback received
	opRevoke     = "revoke"     // POST /revoke of the request's token
	opIntrospect = "introspect" // POST /introspect of the request's token
	opExchange   = "exchange"   // token exchange with the request's token as subject
)

// Outcomes. "unknown" is a call whose effect the client cannot know (503,
// a timeout, a reset connection): it may or may not have taken effect.
const (
	outOK       = "ok"
	outUnknown  = "unknown"
	outNoEffect = "noeffect" // a refusal that changes nothing whatever the state
	outRetry    = "retry"    // 429: refused before any effect, to be tried again
	outConflict = "conflict" // 409: already decided or expired
	outPending  = "authorization_pending"
	outSlowDown = "slow_down"
	outDenied   = "access_denied"
	outExpired  = "expired_token"
	outGrant    = "invalid_grant"
	outToken    = "token"
	outActive   = "active"
	outInactive = "inactive"
	outRefused  = "refused" // token exchange refused (400)
)

// Request kinds: which path the ruleset sends the request down.
const (
	kindPolicy  = "policy"
	kindContext = "context"
	kindDevice  = "device"
)

// linInput is what one operation asked; linOutput what it got.
type linInput struct {
	Op       string
	Kind     string        // authorize: the path the request must take
	Expiry   time.Duration // authorize: expires_in
	Decision string        // decide: approve | deny
	JTI      string        // decide: the decision's jti; revoke/introspect/exchange: the token's jti
	Ret      int64         // the op's return time (ns): an expiry can only be seen after expires_at
}

type linOutput struct {
	Out string
	JTI string // poll / pushed: the token's jti; pushed errors: Out is the error code
	By  string // poll / pushed: the token's approval.by
	DJ  string // poll / pushed: the token's approval.decision_jti
}

// phase of a request.
const (
	phNone = iota
	phPending
	phApproved
	phDenied
	phExpired
)

// reqState is the model's state; comparable, so == is Equal.
type reqState struct {
	Phase    int
	Kind     string
	ExpMin   int64  // earliest instant (ns) the request may expire
	Approver string // decide: the jti of the approving decision ("" for policy/context)
	Redeemed bool
	JTI      string // the released token's jti ("?" when released but unseen)
	Revoked  bool
}

// expirySkew allows for expires_at being computed on the server a little
// before the client's invoke time is taken (second rounding).
const expirySkew = int64(1100 * time.Millisecond)

// settle returns the states s can silently move to before an op that
// returns at ret: policy and context requests approve themselves (the
// rules approved them at bc-authorize), and a request whose token was not
// released expires once its expiry has passed (a denied one included). A device request is never approved silently.
func settle(s reqState, ret int64) []reqState {
	out := []reqState{s}
	if s.Phase == phPending && s.Kind != kindDevice {
		a := s
		a.Phase = phApproved
		out = append(out, a)
	}
	if ret >= s.ExpMin {
		for _, x := range append([]reqState(nil), out...) {
			// Past its expiry a request answers expired_token whatever
			// it was, unless its token was released (CIBA Core §11).
			if (x.Phase == phPending || x.Phase == phApproved || x.Phase == phDenied) && !x.Redeemed {
				x.Phase = phExpired
				out = append(out, x)
			}
		}
	}
	return out
}

// step applies one operation to one (settled) state and returns the
// possible next states; none means the operation is impossible there.
func step(s reqState, in linInput, out linOutput) []reqState {
	if in.Op == opAuthorize {
		if s.Phase != phNone {
			return nil
		}
		return []reqState{{Phase: phPending, Kind: in.Kind, ExpMin: in.Ret + int64(in.Expiry) - expirySkew}}
	}
	if s.Phase == phNone {
		return nil // nothing happens to a request before it exists
	}
	if out.Out == outUnknown {
		return append([]reqState{s}, effect(s, in, out)...)
	}
	return effect(s, in, out)
}

// effect is the definite outcome of an operation in state s.
func effect(s reqState, in linInput, out linOutput) []reqState {
	switch in.Op {
	case opDecide:
		return stepDecide(s, in, out)
	case opPoll, opPushed:
		return stepRelease(s, in, out)
	case opPinged:
		if s.Phase == phPending {
			return nil // a ping says the request was decided (CIBA Core §10.2)
		}
		return []reqState{s}
	case opRevoke:
		return stepRevoke(s, in, out)
	case opIntrospect, opExchange:
		return stepUse(s, in, out)
	}
	return nil
}

func stepDecide(s reqState, in linInput, out linOutput) []reqState {
	switch out.Out {
	case outOK, outUnknown:
		if s.Phase != phPending || s.Kind != kindDevice {
			return nil // only a pending device request takes a decision
		}
		n := s
		if in.Decision == "approve" {
			n.Phase, n.Approver = phApproved, in.JTI
		} else {
			n.Phase = phDenied
		}
		return []reqState{n}
	case outConflict:
		if s.Phase == phPending {
			return nil // first decision wins; a pending request has none yet
		}
		return []reqState{s}
	case outNoEffect:
		return []reqState{s}
	}
	return nil
}

// stepRelease: the token (or the final error) reaching the client.
func stepRelease(s reqState, in linInput, out linOutput) []reqState {
	switch out.Out {
	case outPending:
		if s.Phase != phPending {
			return nil
		}
		return []reqState{s}
	case outSlowDown, outNoEffect:
		return []reqState{s}
	case outDenied:
		if s.Phase != phDenied {
			return nil
		}
		return []reqState{s}
	case outExpired:
		if s.Phase != phExpired {
			return nil
		}
		return []reqState{s}
	case outGrant:
		if !s.Redeemed {
			return nil // an approved request the server no longer knows: lost
		}
		return []reqState{s}
	case outToken, outUnknown:
		return release(s, in, out)
	}
	return nil
}

func release(s reqState, in linInput, out linOutput) []reqState {
	if s.Phase != phApproved {
		return nil
	}
	jti := out.JTI
	if out.Out == outUnknown {
		jti = "?"
	}
	if s.Redeemed {
		// Push mode: every retry carries the same token. A poll never
		// gets a second one (CIBA Core §11: one token per auth_req_id).
		if in.Op == opPushed && out.Out == outToken && s.JTI == jti {
			return []reqState{s}
		}
		return nil
	}
	if out.Out == outToken && !validApproval(s, out) {
		return nil
	}
	n := s
	n.Redeemed, n.JTI = true, jti
	return []reqState{n}
}

// validApproval: the token names the path the request took, and a device
// token names the decision that approved it.
func validApproval(s reqState, out linOutput) bool {
	if s.Kind == kindDevice {
		return out.By == kindDevice && out.DJ != "" && out.DJ == s.Approver
	}
	return out.By == s.Kind
}

func stepRevoke(s reqState, in linInput, out linOutput) []reqState {
	switch out.Out {
	case outOK, outUnknown:
		if !s.Redeemed || (s.JTI != in.JTI && s.JTI != "?") {
			return nil // the client can only hold the token it was given
		}
		n := s
		n.Revoked = true
		return []reqState{n}
	case outNoEffect:
		return []reqState{s}
	}
	return nil
}

// stepUse: introspection and token exchange see a revoked token as
// inactive from the instant the revocation took effect (RFC 7009 §2.1).
func stepUse(s reqState, in linInput, out linOutput) []reqState {
	switch out.Out {
	case outActive, outOK:
		if !s.Redeemed || s.Revoked {
			return nil
		}
		return []reqState{s}
	case outInactive:
		if !s.Revoked {
			return nil
		}
		return []reqState{s}
	case outRefused, outNoEffect, outUnknown:
		return []reqState{s}
	}
	return nil
}

// lifecycleModel is the porcupine model, partitioned by auth_req_id
// (operations on different requests commute).
func lifecycleModel() porcupine.Model {
	nm := porcupine.NondeterministicModel{
		Partition: partitionByRequest,
		Init:      func() []interface{} { return []interface{}{reqState{}} },
		Step: func(state, input, output interface{}) []interface{} {
			in, out := input.(linInput), output.(linOutput)
			var next []interface{}
			for _, st := range settle(state.(reqState), in.Ret) {
				for _, n := range step(st, in, out) {
					next = append(next, n)
				}
			}
			return next
		},
		Equal: func(a, b interface{}) bool { return a.(reqState) == b.(reqState) },
		DescribeOperation: func(input, output interface{}) string {
			in, out := input.(linInput), output.(linOutput)
			return fmt.Sprintf("%s %s%s -> %s %s %s", in.Op, in.Kind, in.Decision, out.Out, out.By, out.JTI)
		},
		DescribeState: func(state interface{}) string { return fmt.Sprintf("%+v", state.(reqState)) },
	}
	return nm.ToModel()
}

func partitionByRequest(history []porcupine.Operation) [][]porcupine.Operation {
	by := map[string][]porcupine.Operation{}
	var keys []string
	for _, op := range history {
		id := op.Metadata.(string)
		if _, ok := by[id]; !ok {
			keys = append(keys, id)
		}
		by[id] = append(by[id], op)
	}
	sort.Strings(keys)
	out := make([][]porcupine.Operation, 0, len(keys))
	for _, k := range keys {
		out = append(out, by[k])
	}
	return out
}

// history records operations as the load runs.
type history struct {
	mu    sync.Mutex
	start time.Time
	ops   []histOp
}

type histOp struct {
	ID        string // auth_req_id
	Client    int
	In        linInput
	Out       linOutput
	Call, Ret time.Time
}

func (h *history) add(op histOp) {
	h.mu.Lock()
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

// operations converts the record for porcupine: an unknown outcome may
// take effect any time after its invoke, so it returns "at the end".
func (h *history) operations() []porcupine.Operation {
	h.mu.Lock()
	defer h.mu.Unlock()
	var end time.Time
	for _, o := range h.ops {
		if o.Ret.After(end) {
			end = o.Ret
		}
	}
	out := make([]porcupine.Operation, 0, len(h.ops))
	for _, o := range h.ops {
		ret := o.Ret
		if o.Out.Out == outUnknown {
			ret = end.Add(time.Hour)
		}
		in := o.In
		in.Ret = ret.UnixNano()
		if o.In.Op == opAuthorize {
			in.Ret = o.Call.UnixNano() // ExpMin counts from the invoke
		}
		out = append(out, porcupine.Operation{ClientId: o.Client, Input: in, Output: o.Out,
			Call: o.Call.UnixNano(), Return: ret.UnixNano(), Metadata: o.ID})
	}
	return out
}

// checkHistory runs porcupine; it returns the result and, when illegal,
// the auth_req_ids of the partitions that failed.
func checkHistory(ops []porcupine.Operation, timeout time.Duration) (porcupine.CheckResult, []string) {
	model := lifecycleModel()
	res := porcupine.CheckOperationsTimeout(model, ops, timeout)
	if res != porcupine.Illegal {
		return res, nil
	}
	var bad []string
	for _, part := range partitionByRequest(ops) {
		if !porcupine.CheckOperations(model, part) {
			bad = append(bad, part[0].Metadata.(string))
		}
	}
	return res, bad
}
