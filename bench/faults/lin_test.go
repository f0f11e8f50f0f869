package main

import (
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// hand builds a history from ops given as (call, return) offsets in ms.
type hand struct {
	t0  time.Time
	ops []porcupine.Operation
}

func (h *hand) op(id string, call, ret int, in linInput, out linOutput) {
	c := h.t0.Add(time.Duration(call) * time.Millisecond)
	r := h.t0.Add(time.Duration(ret) * time.Millisecond)
	in.Ret = r.UnixNano()
	if in.Op == opAuthorize {
		in.Ret = c.UnixNano()
	}
	h.ops = append(h.ops, porcupine.Operation{Input: in, Output: out, Call: c.UnixNano(), Return: r.UnixNano(), Metadata: id})
}

func newHand() *hand { return &hand{t0: time.Unix(1_800_000_000, 0)} }

func authorize(h *hand, id, kind string, expiry time.Duration) {
	h.op(id, 0, 5, linInput{Op: opAuthorize, Kind: kind, Expiry: expiry}, linOutput{Out: outOK})
}

// A good history: a device approval then one token; a denial polled as
// access_denied; a policy token revoked, then inactive; a request that
// expired unanswered; a push delivered twice with the same token.
func goodHistory() *hand {
	h := newHand()
	authorize(h, "dev", kindDevice, time.Minute)
	h.op("dev", 10, 20, linInput{Op: opPoll}, linOutput{Out: outPending})
	h.op("dev", 15, 40, linInput{Op: opDecide, Decision: "approve", JTI: "d1"}, linOutput{Out: outOK})
	h.op("dev", 30, 50, linInput{Op: opPoll}, linOutput{Out: outToken, JTI: "t1", By: kindDevice, DJ: "d1"})
	h.op("dev", 60, 70, linInput{Op: opPoll}, linOutput{Out: outGrant})

	authorize(h, "deny", kindDevice, time.Minute)
	h.op("deny", 10, 20, linInput{Op: opDecide, Decision: "deny", JTI: "d2"}, linOutput{Out: outOK})
	h.op("deny", 25, 30, linInput{Op: opDecide, Decision: "approve", JTI: "d3"}, linOutput{Out: outConflict})
	h.op("deny", 30, 40, linInput{Op: opPoll}, linOutput{Out: outDenied})

	authorize(h, "pol", kindPolicy, time.Minute)
	h.op("pol", 10, 20, linInput{Op: opPoll}, linOutput{Out: outToken, JTI: "t2", By: kindPolicy})
	h.op("pol", 30, 40, linInput{Op: opRevoke, JTI: "t2"}, linOutput{Out: outOK})
	h.op("pol", 35, 45, linInput{Op: opIntrospect, JTI: "t2"}, linOutput{Out: outActive}) // overlaps the revoke
	h.op("pol", 50, 60, linInput{Op: opIntrospect, JTI: "t2"}, linOutput{Out: outInactive})

	authorize(h, "exp", kindDevice, 2*time.Second)
	h.op("exp", 1000, 1010, linInput{Op: opPoll}, linOutput{Out: outPending})
	h.op("exp", 2500, 2510, linInput{Op: opPoll}, linOutput{Out: outExpired})

	authorize(h, "push", kindContext, time.Minute)
	h.op("push", 0, 80, linInput{Op: opPushed}, linOutput{Out: outToken, JTI: "t3", By: kindContext})
	h.op("push", 0, 90, linInput{Op: opPushed}, linOutput{Out: outToken, JTI: "t3", By: kindContext})

	// A 503 on /token that redeemed on the server: the retry sees invalid_grant.
	authorize(h, "lost503", kindPolicy, time.Minute)
	h.op("lost503", 10, 1e6, linInput{Op: opPoll}, linOutput{Out: outUnknown})
	h.op("lost503", 30, 40, linInput{Op: opPoll}, linOutput{Out: outGrant})
	return h
}

func TestCheckerAcceptsGoodHistory(t *testing.T) {
	res, bad := checkHistory(goodHistory().ops, 10*time.Second)
	if res != porcupine.Ok {
		t.Fatalf("good history: %s, failing requests %v", res, bad)
	}
}

func TestCheckerRejectsBadHistories(t *testing.T) {
	cases := map[string]func(h *hand){
		"two tokens for one request": func(h *hand) {
			authorize(h, "x", kindPolicy, time.Minute)
			h.op("x", 10, 20, linInput{Op: opPoll}, linOutput{Out: outToken, JTI: "a", By: kindPolicy})
			h.op("x", 30, 40, linInput{Op: opPoll}, linOutput{Out: outToken, JTI: "b", By: kindPolicy})
		},
		"a token after a denial": func(h *hand) {
			authorize(h, "x", kindDevice, time.Minute)
			h.op("x", 10, 20, linInput{Op: opDecide, Decision: "deny", JTI: "d"}, linOutput{Out: outOK})
			h.op("x", 30, 40, linInput{Op: opPoll}, linOutput{Out: outToken, JTI: "a", By: kindDevice, DJ: "d"})
		},
		"a device token without a device decision": func(h *hand) {
			authorize(h, "x", kindDevice, time.Minute)
			h.op("x", 10, 20, linInput{Op: opPoll}, linOutput{Out: outToken, JTI: "a", By: kindPolicy})
		},
		"a device token naming another decision": func(h *hand) {
			authorize(h, "x", kindDevice, time.Minute)
			h.op("x", 10, 20, linInput{Op: opDecide, Decision: "approve", JTI: "d"}, linOutput{Out: outOK})
			h.op("x", 30, 40, linInput{Op: opPoll}, linOutput{Out: outToken, JTI: "a", By: kindDevice, DJ: "forged"})
		},
		"an acknowledged approval lost": func(h *hand) {
			authorize(h, "x", kindDevice, time.Minute)
			h.op("x", 10, 20, linInput{Op: opDecide, Decision: "approve", JTI: "d"}, linOutput{Out: outOK})
			h.op("x", 30, 40, linInput{Op: opPoll}, linOutput{Out: outGrant})
		},
		"a revoked token active after the revoke returned": func(h *hand) {
			authorize(h, "x", kindPolicy, time.Minute)
			h.op("x", 10, 20, linInput{Op: opPoll}, linOutput{Out: outToken, JTI: "a", By: kindPolicy})
			h.op("x", 30, 40, linInput{Op: opRevoke, JTI: "a"}, linOutput{Out: outOK})
			h.op("x", 50, 60, linInput{Op: opIntrospect, JTI: "a"}, linOutput{Out: outActive})
		},
		"expired before its expiry": func(h *hand) {
			authorize(h, "x", kindDevice, time.Minute)
			h.op("x", 10, 20, linInput{Op: opPoll}, linOutput{Out: outExpired})
		},
		"two decisions both accepted": func(h *hand) {
			authorize(h, "x", kindDevice, time.Minute)
			h.op("x", 10, 20, linInput{Op: opDecide, Decision: "approve", JTI: "d1"}, linOutput{Out: outOK})
			h.op("x", 30, 40, linInput{Op: opDecide, Decision: "deny", JTI: "d2"}, linOutput{Out: outOK})
		},
		"a push retry with another token": func(h *hand) {
			authorize(h, "x", kindPolicy, time.Minute)
			h.op("x", 0, 20, linInput{Op: opPushed}, linOutput{Out: outToken, JTI: "a", By: kindPolicy})
			h.op("x", 0, 30, linInput{Op: opPushed}, linOutput{Out: outToken, JTI: "b", By: kindPolicy})
		},
	}
	for name, build := range cases {
		t.Run(name, func(t *testing.T) {
			h := goodHistory() // the bad request hides among good ones
			build(h)
			res, bad := checkHistory(h.ops, 10*time.Second)
			if res != porcupine.Illegal || len(bad) != 1 || bad[0] != "x" {
				t.Fatalf("%s: got %s, failing %v; want Illegal on x", name, res, bad)
			}
		})
	}
}
