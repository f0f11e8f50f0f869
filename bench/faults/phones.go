package main

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/countersign/countersign/mobile-stub/phone"
)

// handset is one user's stub phone, talking to one node. It decides every
// approval request as its binding message says ("approve N", "deny N";
// "ignore N" is left to expire), from its pushes and, for pushes lost to a
// fault, from a sweep of the pending list.
type handset struct {
	user   string
	client int // the history's client number
	p      *phone.Phone
	hist   *history

	mu       sync.Mutex
	state    map[string]string // auth_req_id -> "inflight" | "done"
	pushes   int
	decided  map[string][]decisionRec
	viewFail int
}

type decisionRec struct {
	JTI, Decision, Out string
	At                 time.Time
}

func newHandset(ctx context.Context, a *api, node, user string, client int, h *history) (*handset, error) {
	r, err := a.adminCall(node, "POST", "/admin/users/"+user+"/enrollments", nil)
	if err != nil {
		return nil, err
	}
	hc := &http.Client{Timeout: 20 * time.Second, Transport: loggingTransport{log: a.log, base: http.DefaultTransport}}
	p, err := phone.New(node, phone.Options{Listen: "127.0.0.1:0", Name: "faults-" + user, HTTPClient: hc})
	if err != nil {
		return nil, err
	}
	if err := p.Start(ctx); err != nil {
		return nil, err
	}
	if err := p.Enroll(ctx, r.str("code")); err != nil {
		return nil, err
	}
	return &handset{user: user, client: client, p: p, hist: h, state: map[string]string{}, decided: map[string][]decisionRec{}}, nil
}

func planOf(bindingMessage string) string {
	plan, _, _ := strings.Cut(bindingMessage, " ")
	return plan
}

func (hs *handset) run(ctx context.Context) {
	go hs.sweep(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case push := <-hs.p.Pushes():
			if push.Type != "approval_request" {
				continue
			}
			hs.mu.Lock()
			hs.pushes++
			hs.mu.Unlock()
			go hs.decide(ctx, push.ID, planOf(push.BindingMessage))
		}
	}
}

// sweep decides what the pushes missed (a push lost while a node or
// Redis was down is still in the pending list).
func (hs *handset) sweep(ctx context.Context) {
	t := time.NewTicker(1500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		list, err := hs.p.Pending(ctx)
		if err != nil {
			continue
		}
		for _, r := range list {
			go hs.decide(ctx, r.ID, planOf(r.BindingMessage))
		}
	}
}

// decide views the request, signs the plan's decision over what it
// shows, sends it, and records the call.
func (hs *handset) decide(ctx context.Context, id, plan string) {
	if plan != "approve" && plan != "deny" {
		return
	}
	hs.mu.Lock()
	if hs.state[id] != "" {
		hs.mu.Unlock()
		return
	}
	hs.state[id] = "inflight"
	hs.mu.Unlock()
	final := ""
	defer func() {
		hs.mu.Lock()
		hs.state[id] = final
		hs.mu.Unlock()
	}()
	view, err := hs.p.View(ctx, id)
	if err != nil {
		hs.mu.Lock()
		hs.viewFail++
		hs.mu.Unlock()
		var se *phone.ServerError
		if errors.As(err, &se) && (se.Status == 409 || se.Status == 404) {
			final = "done"
		}
		return
	}
	if view.Status != "pending" {
		final = "done"
		return
	}
	tok, err := hs.p.DecisionJWT(view, plan, time.Now())
	if err != nil {
		return
	}
	jti, _ := claims(tok)["jti"].(string)
	call := time.Now()
	err = hs.p.PostDecisionJWT(ctx, id, tok)
	op := histOp{ID: id, Client: hs.client, In: linInput{Op: opDecide, Decision: plan, JTI: jti}, Call: call, Ret: time.Now()}
	outcome := decisionOutcome(err)
	op.Out.Out = outcome
	if op.Out.Out == outRetry {
		op.Out.Out = outNoEffect
	}
	hs.hist.add(op)
	hs.mu.Lock()
	hs.decided[id] = append(hs.decided[id], decisionRec{JTI: jti, Decision: plan, Out: op.Out.Out, At: op.Ret})
	hs.mu.Unlock()
	if op.Out.Out != outUnknown && outcome != outRetry {
		final = "done" // an unknown or rate-limited one is tried again by the sweep
	}
}

func decisionOutcome(err error) string {
	var se *phone.ServerError
	switch {
	case err == nil:
		return outOK
	case !errors.As(err, &se) || se.Status >= 500:
		return outUnknown
	case se.Status == 429:
		return outRetry // rate-limited before any effect: try again
	case se.Status == 409:
		return outConflict
	}
	return outNoEffect
}
