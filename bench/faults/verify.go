package main

import (
	"crypto/ecdsa"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// audited is the audit stream indexed by request.
type audited struct {
	issued    map[string][]auditEvent // token.issued
	approved  map[string][]auditEvent // request.approved
	denied    map[string][]auditEvent // request.denied
	decisions map[string]bool         // jti of every audited device decision
}

func (c *cluster) readAudit() (*audited, error) {
	a := &audited{issued: map[string][]auditEvent{}, approved: map[string][]auditEvent{},
		denied: map[string][]auditEvent{}, decisions: map[string]bool{}}
	for typ, into := range map[string]map[string][]auditEvent{"token.issued": a.issued,
		"request.approved": a.approved, "request.denied": a.denied} {
		evs, err := c.auditOf(typ)
		if err != nil {
			return nil, err
		}
		for _, e := range evs {
			into[e.RequestID] = append(into[e.RequestID], e)
			if e.DecisionJWT != "" {
				if j, _ := claims(e.DecisionJWT)["jti"].(string); j != "" {
					a.decisions[e.RequestID+"/"+j] = true
				}
			}
		}
	}
	return a, nil
}

// verify runs every after-the-run check into rep.
func (c *cluster) verify(l *load, phones []*handset, rep *report) error {
	keys, err := c.jwks()
	if err != nil {
		return err
	}
	au, err := c.readAudit()
	if err != nil {
		return err
	}
	decided := map[string][]decisionRec{}
	for _, hs := range phones {
		hs.mu.Lock()
		for id, ds := range hs.decided {
			decided[id] = append(decided[id], ds...)
		}
		rep.DevicePushes += hs.pushes
		hs.mu.Unlock()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	rep.Requests = len(l.reqs)
	for _, rec := range l.reqs {
		c.checkTokens(rec, l.rc, au, keys, decided[rec.ID], rep)
		checkDecisions(rec, au, decided[rec.ID], rep)
		checkApprovedKept(rec, au, decided[rec.ID], rep)
		if rec.Mode != "poll" {
			checkNotified(rec, l.rc, au, rep)
		}
	}
	for id, evs := range au.issued {
		if len(evs) > 1 {
			rep.badReq(id, "tokens issued twice for one auth_req_id (audit)", id)
		}
	}
	return nil
}

// tokensOf collects every access token the client saw for rec: polled
// and pushed.
func tokensOf(rec *reqRecord, rc *receiver) []string {
	toks := append([]string(nil), rec.Tokens...)
	for _, d := range rc.deliveries(rec.ID) {
		if at, _ := d.Body["access_token"].(string); at != "" {
			toks = append(toks, at)
		}
	}
	return toks
}

// checkTokens: one token per request (client side and audit), each
// signed, audited, and approved the way the request had to be.
func (c *cluster) checkTokens(rec *reqRecord, rc *receiver, au *audited, keys map[string]*ecdsa.PublicKey, ds []decisionRec, rep *report) {
	jtis := map[string]bool{}
	for _, tok := range tokensOf(rec, rc) {
		cl, err := verifyToken(tok, keys)
		if err != nil {
			rep.badReq(rec.ID, "tokens with a bad signature", rec.ID+": "+err.Error())
			continue
		}
		rep.Tokens++
		jti, _ := cl["jti"].(string)
		jtis[jti] = true
		ap, _ := cl["approval"].(map[string]any)
		by, _ := ap["by"].(string)
		dj, _ := ap["decision_jti"].(string)
		if !approvalValid(rec, by, dj, au, ds) {
			rep.badReq(rec.ID, "tokens without a policy path or a valid device decision", rec.ID+" by="+by+" kind="+rec.Kind)
		}
		found := false
		for _, e := range au.issued[rec.ID] {
			found = found || e.TokenJTI == jti
		}
		if !found {
			rep.badReq(rec.ID, "tokens without a token.issued audit event", rec.ID)
		}
	}
	if len(jtis) > 1 {
		rep.badReq(rec.ID, "tokens issued twice for one auth_req_id (client)", rec.ID)
	}
}

// approvalValid: policy and context tokens for requests the rules sent
// that way; device tokens for device requests, naming a decision the
// phone made (approve), that the audit stream holds for this request.
func approvalValid(rec *reqRecord, by, dj string, au *audited, ds []decisionRec) bool {
	if rec.Kind != kindDevice {
		return by == rec.Kind && dj == ""
	}
	if by != kindDevice || dj == "" || !au.decisions[rec.ID+"/"+dj] {
		return false
	}
	for _, d := range ds {
		if d.JTI == dj && d.Decision == "approve" && d.Out != outNoEffect && d.Out != outConflict {
			return true
		}
	}
	return false
}

// checkDecisions: every decision the server acknowledged (200) is in
// the audit stream, and its outcome is what the client then saw.
func checkDecisions(rec *reqRecord, au *audited, ds []decisionRec, rep *report) {
	for _, d := range ds {
		rep.Decisions[d.Decision+" "+d.Out]++
		if d.Out != outOK {
			continue
		}
		if !au.decisions[rec.ID+"/"+d.JTI] {
			rep.badReq(rec.ID, "acknowledged decisions missing after the run", rec.ID+" "+d.Decision)
		} else if len(rep.kills) > 0 && d.At.Before(rep.kills[0]) {
			rep.Info["decisions acknowledged before the Redis kill -9, present after it"]++
		}
		if d.Decision == "deny" && len(rec.Tokens) > 0 {
			rep.badReq(rec.ID, "tokens released after an acknowledged denial", rec.ID)
		}
	}
}

// checkApprovedKept: an approval the client was told of ended with a
// token (or the token's answer was lost to a fault after the server
// released it, which the audit shows), never with the request gone.
func checkApprovedKept(rec *reqRecord, au *audited, ds []decisionRec, rep *report) {
	approved := rec.Kind != kindDevice
	for _, d := range ds {
		approved = approved || (d.Decision == "approve" && d.Out == outOK)
	}
	if !approved || rec.Mode == "push" {
		return
	}
	switch {
	case len(rec.Tokens) > 0:
		rep.Info["approved poll/ping requests redeemed"]++
	case len(au.issued[rec.ID]) > 0 && rec.UnknownPoll:
		rep.Info["approved, token released but its answer lost to a fault (then invalid_grant)"]++
	case has(rec.Finals, outExpired):
		rep.Info["approved, expired before a poll got through"]++
	default:
		rep.badReq(rec.ID, "approved requests lost", rec.ID+" "+strings.Join(rec.Finals, ","))
	}
}

// checkNotified: every ping and push request was called back, or expired.
func checkNotified(rec *reqRecord, rc *receiver, au *audited, rep *report) {
	ds := rc.deliveries(rec.ID)
	rc.mu.Lock()
	failed := rc.failed[rec.ID]
	rc.mu.Unlock()
	switch {
	case len(ds) > 0:
		rep.Callbacks[rec.Mode+" delivered"]++
		if len(ds) > 1 {
			rep.Callbacks[rec.Mode+" delivered more than once (retry after a lost answer)"]++
		}
		if failed > 0 {
			rep.Callbacks[rec.Mode+" delivered after failed attempts"]++
		}
	case time.Now().After(rec.ExpiresAt):
		rep.Callbacks[rec.Mode+" not delivered, request expired"]++
		rc.mu.Lock()
		rep.Undelivered = append(rep.Undelivered, fmt.Sprintf("%s %s created %s expires %s: %v", rec.Mode, rec.ID,
			rec.Call.Format("15:04:05.000"), rec.ExpiresAt.Format("15:04:05.000"), rc.attempts[rec.ID]))
		rc.mu.Unlock()
		rep.Info[fmt.Sprintf("%s not delivered: %s %s, %d failed attempts, audit issued=%d approved=%d denied=%d", rec.Mode,
			rec.Kind, rec.Plan, failed, len(au.issued[rec.ID]), len(au.approved[rec.ID]), len(au.denied[rec.ID]))]++
	default:
		rep.badReq(rec.ID, "ping/push neither delivered nor expired", rec.ID)
	}
}

func has(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// linearizability checks the history; under appendfsync everysec a
// request whose last acknowledged write came within 2 s before a Redis
// kill -9 may legitimately lose it (AOF fsyncs once a second), so its
// failure is reported apart; under always nothing is excused.
func linearizability(h *history, rep *report) {
	ops := h.operations()
	known := map[string]bool{}
	for _, op := range ops {
		if op.Input.(linInput).Op == opAuthorize {
			known[op.Metadata.(string)] = true
		}
	}
	var keep []porcupine.Operation
	orphan := map[string]bool{}
	for _, op := range ops {
		if id := op.Metadata.(string); known[id] {
			keep = append(keep, op)
		} else {
			orphan[id] = true
		}
	}
	rep.Orphans, rep.Operations = len(orphan), len(keep)
	t0 := time.Now()
	res, bad := checkHistory(keep, 5*time.Minute)
	rep.CheckSeconds = time.Since(t0).Seconds()
	rep.Linearizable = string(res)
	for _, id := range bad {
		if rep.excuse != nil && rep.excuse(id) {
			rep.LinExcused = append(rep.LinExcused, id)
			continue
		}
		rep.LinFailures = append(rep.LinFailures, id)
		rep.LinDetail = append(rep.LinDetail, describePartition(h, id)...)
	}
	rep.SelfCheck = doctoredRejected(keep)
	if !strings.HasPrefix(rep.SelfCheck, "rejected") {
		rep.bad("the checker accepted a doctored copy of the run's history", 1, rep.SelfCheck)
	}
	if res == porcupine.Unknown {
		rep.bad("linearizability check timed out", 1, "")
	}
	rep.bad("requests whose history is not linearizable", len(rep.LinFailures), strings.Join(rep.LinFailures, " "))
}

func ackedBeforeKill(h *history, id string, kills []time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, o := range h.ops {
		if o.ID != id {
			continue
		}
		for _, k := range kills {
			if !o.Ret.After(k) && k.Sub(o.Ret) < 2*time.Second {
				return true
			}
		}
	}
	return false
}

// describePartition lists one request's operations, for the report of a
// history the checker rejected.
func describePartition(h *history, id string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var ops []histOp
	for _, o := range h.ops {
		if o.ID == id {
			ops = append(ops, o)
		}
	}
	sort.Slice(ops, func(i, j int) bool { return ops[i].Call.Before(ops[j].Call) })
	out := []string{"request " + id + ":"}
	for _, o := range ops {
		out = append(out, fmt.Sprintf("  %s..%s c%d %s kind=%s dec=%s jti=%.8s -> %s by=%s jti=%.8s dj=%.8s",
			o.Call.Format("15:04:05.000"), o.Ret.Format("15:04:05.000"), o.Client, o.In.Op, o.In.Kind, o.In.Decision,
			o.In.JTI, o.Out.Out, o.Out.By, o.Out.JTI, o.Out.DJ))
	}
	return out
}

// doctoredRejected shows the check is live on this run's own data: it
// copies the history of the first request that got a token by polling,
// adds a second poll after the end answered with another token, and
// expects porcupine to reject that copy.
func doctoredRejected(ops []porcupine.Operation) string {
	for _, part := range partitionByRequest(ops) {
		var last int64
		var tok *porcupine.Operation
		for i := range part {
			last = max(last, part[i].Return)
			if out := part[i].Output.(linOutput); out.Out == outToken && part[i].Input.(linInput).Op == opPoll {
				tok = &part[i]
			}
		}
		if tok == nil {
			continue
		}
		bad := append([]porcupine.Operation(nil), part...)
		out := tok.Output.(linOutput)
		out.JTI += "-second"
		in := tok.Input.(linInput)
		in.Ret = last + 2
		bad = append(bad, porcupine.Operation{ClientId: tok.ClientId, Input: in, Output: out, Call: last + 1, Return: last + 2, Metadata: tok.Metadata})
		if porcupine.CheckOperations(lifecycleModel(), bad) {
			return "ACCEPTED a second token for " + tok.Metadata.(string)
		}
		return "rejected a second token added to the history of " + tok.Metadata.(string)
	}
	return "no request got a token by polling"
}

// addCallbackOps puts every ping and push the receiver accepted into the
// history: the effect it reports (a decision, a released token, a denial,
// an expiry) happened between the bc-authorize call and the receipt.
func addCallbackOps(l *load) {
	l.mu.Lock()
	recs := make([]*reqRecord, 0, len(l.reqs))
	for _, rec := range l.reqs {
		if rec.Mode != "poll" {
			recs = append(recs, rec)
		}
	}
	l.mu.Unlock()
	for _, rec := range recs {
		for _, d := range l.rc.deliveries(rec.ID) {
			op := histOp{ID: rec.ID, Client: 2000, In: linInput{Op: opPinged}, Out: linOutput{Out: outOK}, Call: rec.Call, Ret: d.At}
			if rec.Mode == "push" {
				op.In.Op = opPushed
				if at, _ := d.Body["access_token"].(string); at != "" {
					op.Out = tokenOutput(at)
				} else {
					op.Out.Out, _ = d.Body["error"].(string)
				}
			}
			l.hist.add(op)
		}
	}
}
