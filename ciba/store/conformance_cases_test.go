package store_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/countersign/countersign/ciba/store"
)

var conformance = []conformanceCase{
	{"poll interval, wrong client, expiry", []string{"CreateRequest", "Poll"}, func(t *testing.T, e env) {
		r := e.pending(t, "agent", "alice", time.Minute, nil)
		for _, step := range []struct {
			advance time.Duration
			client  string
			want    store.PollStatus
		}{
			{0, "agent", store.PollPending},
			{0, "other", store.PollWrongClient},
			{time.Second, "agent", store.PollSlowDown},
			{15 * time.Second, "agent", store.PollPending},
			{time.Minute, "agent", store.PollExpired},
		} {
			e.clock.Advance(step.advance)
			o, err := e.db.Poll(e.ctx, r.ID, step.client)
			if err != nil || o.Status != step.want {
				t.Fatalf("poll by %s after %v: %+v %v, want %s", step.client, step.advance, o, err, step.want)
			}
		}
		if o, err := e.db.Poll(e.ctx, store.NewShardedID(1), "agent"); err != nil || o.Status != store.PollUnknown {
			t.Fatalf("unknown id: %+v %v", o, err)
		}
	}},
	{"first decision wins", []string{"Decide", "RequestFor", "RequestByID"}, func(t *testing.T, e env) {
		r := e.pending(t, "agent", "alice", time.Minute, nil)
		must(t, e.approve(t, r, nil))
		if err := e.deny(t, r); !errors.Is(err, store.ErrDecided) {
			t.Fatalf("second decision: %v", err)
		}
		if err := e.approve(t, r, nil); !errors.Is(err, store.ErrDecided) {
			t.Fatalf("second approval: %v", err)
		}
		rs, err := e.db.RequestFor(e.ctx, r.ID, "alice")
		if err != nil || rs.State != store.Approved || rs.Approval == nil || rs.Approval.DeviceID != "d1" {
			t.Fatalf("request after decisions: %+v %v", rs, err)
		}
		o, _ := e.db.Poll(e.ctx, r.ID, "agent")
		if o.Status != store.PollApproved {
			t.Fatalf("poll: %+v", o)
		}
		d := e.pending(t, "agent", "alice", time.Minute, nil)
		must(t, e.deny(t, d))
		if st := e.state(t, d.ID); st != store.Denied {
			t.Fatalf("denied request: %s", st)
		}
	}},
	{"decision after expiry", []string{"Decide"}, func(t *testing.T, e env) {
		r := e.pending(t, "agent", "alice", time.Minute, nil)
		e.clock.Advance(time.Minute)
		if err := e.approve(t, r, nil); !errors.Is(err, store.ErrDecided) {
			t.Fatalf("approve expired: %v", err)
		}
		if st := e.state(t, r.ID); st != store.Expired {
			t.Fatalf("state %s", st)
		}
	}},
	{"wrong user", []string{"Decide", "RequestFor"}, func(t *testing.T, e env) {
		r := e.pending(t, "agent", "alice", time.Minute, nil)
		if _, err := e.db.RequestFor(e.ctx, r.ID, "mallory"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("another user's request: %v", err)
		}
		other := r
		other.UserID = "mallory"
		if err := e.approve(t, other, nil); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("decision by another user: %v", err)
		}
		if st := e.state(t, r.ID); st != store.Pending {
			t.Fatalf("state %s after a refused decision", st)
		}
		if _, err := e.db.RequestFor(e.ctx, "not-an-id", ""); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("malformed id: %v", err)
		}
	}},
	{"redeemed once", []string{"CreateRequest", "Redeem"}, func(t *testing.T, e env) {
		r := newReq(e.db, "agent", "bob", time.Minute)
		must(t, e.db.CreateRequest(e.ctx, store.NewRequest{Request: r, State: store.Approved,
			Approval: &store.Approval{By: "policy", At: e.db.Now()}}))
		must(t, e.db.Redeem(e.ctx, &r, []store.Event{ev(e, "token.issued")}))
		if err := e.db.Redeem(e.ctx, &r, nil); !errors.Is(err, store.ErrNotRedeemable) {
			t.Fatalf("second redeem: %v", err)
		}
		late := e.pending(t, "agent", "bob", time.Minute, nil)
		must(t, e.approve(t, late, nil))
		e.clock.Advance(time.Minute)
		if err := e.db.Redeem(e.ctx, &late, nil); !errors.Is(err, store.ErrNotRedeemable) {
			t.Fatalf("redeem after expiry: %v", err)
		}
	}},
	{"denied by policy stores only counters", []string{"CreateRequest", "ReadSignals"}, func(t *testing.T, e env) {
		r := newReq(e.db, "agent", "carol", time.Minute)
		must(t, e.db.CreateRequest(e.ctx, store.NewRequest{Request: r, State: store.Denied}))
		if _, err := e.db.RequestByID(e.ctx, r.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("denied request stored: %v", err)
		}
		if s := e.signals(t, "agent", "carol"); s.AgentUserDenials24h != 1 || s.AgentRequests1h != 0 {
			t.Fatalf("signals %+v", s)
		}
	}},
	{"pending limits", []string{"CreateRequest"}, func(t *testing.T, e env) {
		lim := store.Limits{PendingPerUser: 2, PendingPerAgentUser: 1, PushesPerMinute: 2}
		create := func(client string) error {
			return e.db.CreateRequest(e.ctx, store.NewRequest{Request: newReq(e.db, client, "dave", time.Minute), State: store.Pending, Limits: lim})
		}
		must(t, create("a1"))
		var le *store.LimitError
		if err := create("a1"); !errors.As(err, &le) || le.Which != "agent_user_pending" || le.RetryAfter != time.Minute {
			t.Fatalf("second for a1: %v", err)
		}
		must(t, create("a2"))
		if err := create("a3"); !errors.As(err, &le) || le.Which != "user_pending" {
			t.Fatalf("third: %v", err)
		}
		e.clock.Advance(61 * time.Second)
		must(t, create("a3"))
	}},
	{"pending ordering", []string{"PendingFor"}, func(t *testing.T, e env) {
		var ids []string
		for i := 0; i < 4; i++ {
			ids = append(ids, e.pending(t, "agent", "erin", time.Duration(5-i)*time.Minute, nil).ID)
			e.clock.Advance(time.Second)
		}
		must(t, e.deny(t, store.Request{ID: ids[1], ClientID: "agent", UserID: "erin"}))
		e.pending(t, "agent", "frank", time.Minute, nil)
		got, err := e.db.PendingFor(e.ctx, "erin")
		must(t, err)
		var order []string
		for _, rs := range got {
			order = append(order, rs.Request.ID)
		}
		if want := []string{ids[3], ids[2], ids[0]}; !slices.Equal(order, want) {
			t.Fatalf("pending %v, want newest first %v", order, want)
		}
		e.clock.Advance(2*time.Minute + 30*time.Second)
		got, _ = e.db.PendingFor(e.ctx, "erin")
		if len(got) != 2 {
			t.Fatalf("after the first expiry: %d pending", len(got))
		}
	}},
	{"expiry sweep", []string{"DueExpiries", "Expire", "ForgetExpiry"}, func(t *testing.T, e env) {
		r := e.pending(t, "agent", "gina", time.Minute, nil)
		shard := store.ShardOf("gina")
		if due, err := e.db.DueExpiries(e.ctx, shard, 10); err != nil || len(due) != 0 {
			t.Fatalf("due before expiry: %v %v", due, err)
		}
		if ok, err := e.db.Expire(e.ctx, &r, nil, nil); err != nil || ok {
			t.Fatalf("expire before due: %v %v", ok, err)
		}
		e.clock.Advance(time.Minute)
		due, err := e.db.DueExpiries(e.ctx, shard, 10)
		if err != nil || !slices.Equal(due, []string{r.ID}) {
			t.Fatalf("due: %v %v", due, err)
		}
		ob := &store.Outbox{RequestID: r.ID, Kind: "expired"}
		if ok, err := e.db.Expire(e.ctx, &r, ob, []store.Event{ev(e, "request.expired")}); err != nil || !ok {
			t.Fatalf("expire: %v %v", ok, err)
		}
		if ok, _ := e.db.Expire(e.ctx, &r, ob, nil); ok {
			t.Fatal("expired twice")
		}
		if st := e.state(t, r.ID); st != store.Expired {
			t.Fatalf("state %s", st)
		}
		gone := e.pending(t, "agent", "gina", time.Minute, nil)
		e.clock.Advance(time.Minute)
		must(t, e.db.ForgetExpiry(e.ctx, gone.ID))
		if due, _ := e.db.DueExpiries(e.ctx, shard, 10); len(due) != 0 {
			t.Fatalf("due after forget: %v", due)
		}
	}},
	{"outbox claim and takeover", []string{"EnsureOutboxGroups", "ReadOutbox", "ClaimStale", "Touch", "Done"}, func(t *testing.T, e env) {
		must(t, e.db.EnsureOutboxGroups(e.ctx))
		must(t, e.db.EnsureOutboxGroups(e.ctx)) // idempotent
		r := e.pending(t, "agent", "hana", time.Minute, &store.Outbox{Kind: "device"})
		msgs, err := e.db.ReadOutbox(e.ctx, "node1", 10, 10*time.Millisecond)
		if err != nil || len(msgs) != 1 || msgs[0].Outbox.RequestID != r.ID || msgs[0].Outbox.Kind != "device" {
			t.Fatalf("read: %+v %v", msgs, err)
		}
		if again, _ := e.db.ReadOutbox(e.ctx, "node1", 10, 10*time.Millisecond); len(again) != 0 {
			t.Fatalf("read twice: %+v", again)
		}
		must(t, e.db.Touch(e.ctx, "node1", msgs[0]))
		taken, err := e.db.ClaimStale(e.ctx, "node2", 0, 10)
		if err != nil || len(taken) != 1 || taken[0].ID != msgs[0].ID {
			t.Fatalf("takeover: %+v %v", taken, err)
		}
		if stale, _ := e.db.ClaimStale(e.ctx, "node2", time.Hour, 10); len(stale) != 0 {
			t.Fatalf("claimed a fresh entry: %+v", stale)
		}
		must(t, e.db.Done(e.ctx, taken[0]))
		if left, _ := e.db.ClaimStale(e.ctx, "node3", 0, 10); len(left) != 0 {
			t.Fatalf("after done: %+v", left)
		}
	}},
	{"users", []string{"CreateUser", "PutUser", "User", "Users", "UserByHint", "DeleteUser"}, func(t *testing.T, e env) {
		u := e.user(t, "ivan", "ivan@example.com")
		if err := e.db.CreateUser(e.ctx, &store.User{ID: "ivan"}, ev(e, "user.created")); !errors.Is(err, store.ErrExists) {
			t.Fatalf("same id: %v", err)
		}
		if err := e.db.CreateUser(e.ctx, &store.User{ID: "ivan2", Email: "ivan@example.com"}, ev(e, "user.created")); !errors.Is(err, store.ErrExists) {
			t.Fatalf("same email: %v", err)
		}
		e.user(t, "judy", "judy@example.com")
		if got, err := e.db.UserByHint(e.ctx, "ivan@example.com"); err != nil || got.ID != "ivan" {
			t.Fatalf("by email: %+v %v", got, err)
		}
		moved := *u
		moved.Email = "i@example.com"
		must(t, e.db.PutUser(e.ctx, u, &moved, ev(e, "user.updated")))
		if _, err := e.db.UserByHint(e.ctx, "ivan@example.com"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("old email still resolves: %v", err)
		}
		taken := moved
		taken.Email = "judy@example.com"
		if err := e.db.PutUser(e.ctx, &moved, &taken, ev(e, "user.updated")); !errors.Is(err, store.ErrExists) {
			t.Fatalf("taking another's email: %v", err)
		}
		if err := e.db.PutUser(e.ctx, &store.User{ID: "nobody"}, &store.User{ID: "nobody"}, ev(e, "user.updated")); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("put unknown: %v", err)
		}
		if got, err := e.db.User(e.ctx, "ivan"); err != nil || got.Email != "i@example.com" {
			t.Fatalf("user: %+v %v", got, err)
		}
		must(t, e.db.DeleteUser(e.ctx, &moved, ev(e, "user.deleted")))
		if err := e.db.DeleteUser(e.ctx, &moved, ev(e, "user.deleted")); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("delete twice: %v", err)
		}
		all, err := e.db.Users(e.ctx)
		if err != nil || len(all) != 1 || all[0].ID != "judy" {
			t.Fatalf("users: %+v %v", all, err)
		}
		if _, err := e.db.UserByHint(e.ctx, "i@example.com"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("deleted user's email: %v", err)
		}
	}},
	{"clients", []string{"CreateClient", "PutClient", "Client", "Clients", "DeleteClient", "ClientsChannel", "WatchClients"}, func(t *testing.T, e env) {
		changed := make(chan string, 16)
		ctx, cancel := contextWithCancel(e)
		defer cancel()
		go e.db.WatchClients(ctx, func(id string) { changed <- id })
		if id := <-changed; id != "" {
			t.Fatalf("first announcement %q, want the (re)subscription", id)
		}
		if e.db.ClientsChannel() == "" {
			t.Fatal("no clients channel")
		}
		c := &store.Client{ID: "cli-b", Name: "B", AuthMethod: "private_key_jwt"}
		must(t, e.db.CreateClient(e.ctx, c, ev(e, "client.created")))
		if err := e.db.CreateClient(e.ctx, c, ev(e, "client.created")); !errors.Is(err, store.ErrExists) {
			t.Fatalf("create twice: %v", err)
		}
		if id := <-changed; id != "cli-b" {
			t.Fatalf("announced %q", id)
		}
		must(t, e.db.CreateClient(e.ctx, &store.Client{ID: "cli-a"}, ev(e, "client.created")))
		c.Name = "B2"
		must(t, e.db.PutClient(e.ctx, c, ev(e, "client.updated")))
		if err := e.db.PutClient(e.ctx, &store.Client{ID: "nope"}, ev(e, "client.updated")); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("put unknown: %v", err)
		}
		if got, err := e.db.Client(e.ctx, "cli-b"); err != nil || got.Name != "B2" {
			t.Fatalf("client: %+v %v", got, err)
		}
		all, err := e.db.Clients(e.ctx)
		if err != nil || len(all) != 2 || all[0].ID != "cli-a" || all[1].ID != "cli-b" {
			t.Fatalf("clients sorted: %+v %v", all, err)
		}
		must(t, e.db.DeleteClient(e.ctx, "cli-a", ev(e, "client.deleted")))
		if err := e.db.DeleteClient(e.ctx, "cli-a", ev(e, "client.deleted")); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("delete twice: %v", err)
		}
		if _, err := e.db.Client(e.ctx, "cli-a"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("deleted client: %v", err)
		}
	}},
	{"enrollment code used twice", []string{"CreateEnrollment", "Enroll", "Device", "Devices", "SetPushSubscription", "RemoveDevice"}, func(t *testing.T, e env) {
		e.user(t, "kim", "")
		must(t, e.db.CreateEnrollment(e.ctx, "kim", "code-1", e.db.Now().Add(10*time.Minute)))
		d, err := e.db.Enroll(e.ctx, "code-1", store.Device{ID: "dev1", Name: "phone"}, ev(e, "device.enrolled"))
		if err != nil || d.UserID != "kim" {
			t.Fatalf("enroll: %+v %v", d, err)
		}
		if _, err := e.db.Enroll(e.ctx, "code-1", store.Device{ID: "dev2"}, ev(e, "device.enrolled")); !errors.Is(err, store.ErrBadCode) {
			t.Fatalf("code used twice: %v", err)
		}
		if _, err := e.db.Enroll(e.ctx, "never", store.Device{ID: "dev3"}, ev(e, "device.enrolled")); !errors.Is(err, store.ErrBadCode) {
			t.Fatalf("unknown code: %v", err)
		}
		must(t, e.db.CreateEnrollment(e.ctx, "ghost", "code-2", e.db.Now().Add(time.Minute)))
		if _, err := e.db.Enroll(e.ctx, "code-2", store.Device{ID: "dev4"}, ev(e, "device.enrolled")); !errors.Is(err, store.ErrBadCode) {
			t.Fatalf("code of a user that does not exist: %v", err)
		}
		sub := json.RawMessage(`{"endpoint":"https://push.example/1"}`)
		must(t, e.db.SetPushSubscription(e.ctx, "dev1", sub))
		if got, err := e.db.Device(e.ctx, "dev1"); err != nil || string(got.PushSubscription) != string(sub) {
			t.Fatalf("device: %+v %v", got, err)
		}
		if err := e.db.SetPushSubscription(e.ctx, "dev9", sub); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown device: %v", err)
		}
		if u, _ := e.db.UserByHint(e.ctx, "kim"); u == nil || u.Devices != 1 {
			t.Fatalf("device count: %+v", u)
		}
		must(t, e.db.RemoveDevice(e.ctx, d, ev(e, "device.removed")))
		if err := e.db.RemoveDevice(e.ctx, d, ev(e, "device.removed")); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("remove twice: %v", err)
		}
		if ds, err := e.db.Devices(e.ctx, "kim"); err != nil || len(ds) != 0 {
			t.Fatalf("devices after removal: %+v %v", ds, err)
		}
	}},
	{"lookup pipeline", []string{"LookupAuthorize"}, func(t *testing.T, e env) {
		must(t, e.db.CreateClient(e.ctx, &store.Client{ID: "agent"}, ev(e, "client.created")))
		e.user(t, "lena", "lena@example.com")
		r := e.pending(t, "agent", "lena", time.Minute, nil)
		must(t, e.approve(t, r, nil))
		names := []string{store.SigAgentUserRequests1h, store.SigFirstTime}
		l, err := e.db.LookupAuthorize(e.ctx, "agent", "lena", names, e.db.Now())
		if err != nil || l.Client == nil || l.User == nil || l.User.ID != "lena" || l.SignalsFor != "lena" ||
			l.Signals.AgentUserRequests1h != 1 || l.Signals.FirstTime {
			t.Fatalf("by id: %+v %v", l, err)
		}
		l, err = e.db.LookupAuthorize(e.ctx, "agent", "lena@example.com", names, e.db.Now())
		if err != nil || l.User == nil || l.User.ID != "lena" || l.SignalsFor != "" {
			t.Fatalf("by email: %+v %v", l, err)
		}
		l, err = e.db.LookupAuthorize(e.ctx, "nobody", "nobody", nil, e.db.Now())
		if err != nil || l.Client != nil || l.User != nil {
			t.Fatalf("nothing: %+v %v", l, err)
		}
	}},
	{"counters and signals", []string{"ReadSignals", "Decide", "CreateRequest"}, func(t *testing.T, e env) {
		r := newReq(e.db, "agent", "mia", time.Minute)
		r.Amount = 30
		must(t, e.db.CreateRequest(e.ctx, store.NewRequest{Request: r, State: store.Approved, Approval: &store.Approval{By: "policy"}}))
		p := e.pending(t, "agent", "mia", time.Minute, nil)
		p.Amount = 0
		must(t, e.approve(t, p, nil))
		e.pending(t, "agent", "mia", time.Minute, nil)
		d := e.pending(t, "agent", "mia", time.Minute, nil)
		must(t, e.deny(t, d))
		want := store.Signals{AgentRequests1h: 2, AgentUserRequests1h: 2, UserPending: 1, AgentUserDenials24h: 1,
			UserSpend24h: 30, AgentUserSpend24h: 30}
		if s := e.signals(t, "agent", "mia"); s != want {
			t.Fatalf("signals %+v, want %+v", s, want)
		}
		if s := e.signals(t, "other", "mia"); !s.FirstTime || s.UserSpend24h != 30 || s.AgentRequests1h != 0 {
			t.Fatalf("another agent: %+v", s)
		}
		e.clock.Advance(25 * time.Hour)
		if s := e.signals(t, "agent", "mia"); s.UserSpend24h != 0 || s.AgentRequests1h != 0 || s.FirstTime {
			t.Fatalf("a day later: %+v", s)
		}
	}},
	{"single-use jti and locks", []string{"UseOnce", "TryLock"}, func(t *testing.T, e env) {
		until := e.db.Now().Add(time.Minute)
		if ok, err := e.db.UseOnce(e.ctx, "assertion", "j1", until); err != nil || !ok {
			t.Fatalf("first use: %v %v", ok, err)
		}
		if ok, _ := e.db.UseOnce(e.ctx, "assertion", "j1", until); ok {
			t.Fatal("jti used twice")
		}
		if ok, _ := e.db.UseOnce(e.ctx, "decision", "j1", until); !ok {
			t.Fatal("same jti of another kind refused")
		}
		if ok, err := e.db.TryLock(e.ctx, "rotate", time.Minute); err != nil || !ok {
			t.Fatalf("lock: %v %v", ok, err)
		}
		if ok, _ := e.db.TryLock(e.ctx, "rotate", time.Minute); ok {
			t.Fatal("lock taken twice")
		}
	}},
	{"singletons", []string{"Load", "LoadOrInit", "Swap"}, func(t *testing.T, e env) {
		if _, err := e.db.Load(e.ctx, "keys"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("load missing: %v", err)
		}
		v, err := e.db.LoadOrInit(e.ctx, "keys", []byte("v1"))
		if err != nil || string(v) != "v1" {
			t.Fatalf("init: %q %v", v, err)
		}
		if v, _ := e.db.LoadOrInit(e.ctx, "keys", []byte("other")); string(v) != "v1" {
			t.Fatalf("second init replaced: %q", v)
		}
		if ok, err := e.db.Swap(e.ctx, "keys", []byte("stale"), []byte("v2")); err != nil || ok {
			t.Fatalf("swap from a stale value: %v %v", ok, err)
		}
		if ok, err := e.db.Swap(e.ctx, "keys", []byte("v1"), []byte("v2")); err != nil || !ok {
			t.Fatalf("swap: %v %v", ok, err)
		}
		if v, _ := e.db.Load(e.ctx, "keys"); string(v) != "v2" {
			t.Fatalf("after swap: %q", v)
		}
	}},
	{"revocation of token, grant and agent", []string{"RevokeToken", "RevokeGrant", "RevokeAgent", "Revoked", "GrantsFor"}, func(t *testing.T, e env) {
		r := e.pending(t, "agent", "nina", time.Minute, nil)
		g := grantFor(r, time.Hour)
		must(t, e.approve(t, r, g))
		grants, err := e.db.GrantsFor(e.ctx, "nina")
		if err != nil || len(grants) != 1 || grants[0].ID != g.ID {
			t.Fatalf("grants: %+v %v", grants, err)
		}
		tok := store.TokenRef{User: "nina", JTI: "t1", GrantID: g.ID, Actors: []string{"agent"}, IssuedAt: e.db.Now()}
		revoked := func(ref store.TokenRef) string {
			t.Helper()
			ok, why, err := e.db.Revoked(e.ctx, ref)
			must(t, err)
			if ok != (why != "") {
				t.Fatalf("revoked %v with reason %q", ok, why)
			}
			return why
		}
		if why := revoked(tok); why != "" {
			t.Fatalf("fresh token: %s", why)
		}
		must(t, e.db.RevokeToken(e.ctx, "nina", "t1", e.db.Now().Add(time.Hour), ev(e, "token.revoked")))
		if why := revoked(tok); why != "token revoked" {
			t.Fatalf("after token revocation: %q", why)
		}
		tok.JTI = "t2"
		if err := e.db.RevokeGrant(e.ctx, "mallory", g.ID, ev(e, "grant.revoked")); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("another user's grant: %v", err)
		}
		if why := revoked(tok); why != "" {
			t.Fatalf("after a refused grant revocation: %q", why)
		}
		must(t, e.db.RevokeGrant(e.ctx, "nina", g.ID, ev(e, "grant.revoked")))
		if why := revoked(tok); why != "grant revoked" {
			t.Fatalf("after grant revocation: %q", why)
		}
		tok.GrantID = ""
		must(t, e.db.RevokeAgent(e.ctx, "agent", "nina", ev(e, "agent.revoked")))
		if why := revoked(tok); why != "agent revoked" {
			t.Fatalf("after agent revocation for the user: %q", why)
		}
		other := store.TokenRef{User: "olga", JTI: "t3", Actors: []string{"agent"}, IssuedAt: e.db.Now()}
		if why := revoked(other); why != "" {
			t.Fatalf("another user's token: %q", why)
		}
		must(t, e.db.RevokeAgent(e.ctx, "agent", "", ev(e, "agent.revoked")))
		if why := revoked(other); why != "agent revoked" {
			t.Fatalf("after the kill switch: %q", why)
		}
		e.clock.Advance(time.Second)
		later := store.TokenRef{User: "olga", JTI: "t4", Actors: []string{"agent"}, IssuedAt: e.db.Now()}
		if why := revoked(later); why != "" {
			t.Fatalf("token issued after the kill switch: %q", why)
		}
	}},
	{"approval links", []string{"ClaimApproval", "ReplaceApproval", "ForgetApproval"}, func(t *testing.T, e env) {
		// The link expires with its request, on the store's clock (here
		// far from the wall clock's).
		until := e.db.Now().Add(time.Minute)
		key := e.db.Prefix() + fmt.Sprintf("{s%02d}:authzen:k", store.ShardOf("pia"))
		linkTTL := func() time.Duration {
			t.Helper()
			d, err := e.db.Redis().PTTL(e.ctx, key).Result()
			must(t, err)
			return d
		}
		if id, ok, err := e.db.ClaimApproval(e.ctx, "pia", "k", "r1", until); err != nil || !ok || id != "r1" {
			t.Fatalf("claim: %q %v %v", id, ok, err)
		}
		if d := linkTTL(); d <= 0 || d > time.Minute {
			t.Fatalf("claimed link lives %v, want at most the minute its request waits", d)
		}
		if id, ok, _ := e.db.ClaimApproval(e.ctx, "pia", "k", "r2", until); ok || id != "r1" {
			t.Fatalf("second claim: %q %v", id, ok)
		}
		must(t, e.db.ReplaceApproval(e.ctx, "pia", "k", "r2", until))
		if d := linkTTL(); d <= 0 || d > time.Minute {
			t.Fatalf("replaced link lives %v", d)
		}
		if id, ok, _ := e.db.ClaimApproval(e.ctx, "pia", "k", "r3", until); ok || id != "r2" {
			t.Fatalf("after replace: %q %v", id, ok)
		}
		must(t, e.db.ForgetApproval(e.ctx, "pia", "k"))
		if id, ok, _ := e.db.ClaimApproval(e.ctx, "pia", "k", "r3", until); !ok || id != "r3" {
			t.Fatalf("after forget: %q %v", id, ok)
		}
	}},
	{"audit chain append, verify, trim", []string{"Audit", "AuditEntries", "VerifyAudit", "LastDecisions", "ExportOlder", "TrimExported"}, func(t *testing.T, e env) {
		must(t, e.db.Audit(e.ctx, "quinn", store.Event{At: e.db.Now(), Type: "token.refused", User: "quinn"}))
		must(t, e.db.Audit(e.ctx, "", store.Event{At: e.db.Now(), Type: "client.created"}))
		e.pending(t, "agent", "quinn", time.Minute, nil)
		e.clock.Advance(time.Hour)
		must(t, e.db.Audit(e.ctx, "quinn", store.Event{At: e.db.Now(), Type: "token.refused", User: "quinn"}))
		evs, _, err := e.db.AuditEntries(e.ctx, store.AuditQuery{User: "quinn"})
		if err != nil || len(evs) != 3 {
			t.Fatalf("entries of quinn: %d %v", len(evs), err)
		}
		dec, err := e.db.LastDecisions(e.ctx, 5)
		if err != nil || len(dec) != 1 || dec[0].Type != "risk.decision" {
			t.Fatalf("last decisions: %+v %v", dec, err)
		}
		rep, err := e.db.VerifyAudit(e.ctx)
		if err != nil || !rep.OK || rep.Checked != 4 {
			t.Fatalf("verify: %+v %v", rep, err)
		}
		var exported []store.Event
		last, err := e.db.ExportOlder(e.ctx, e.db.Now().Add(-time.Minute), func(ev store.Event) error {
			exported = append(exported, ev)
			return nil
		})
		if err != nil || len(exported) != 3 {
			t.Fatalf("export: %d %v", len(exported), err)
		}
		n, err := e.db.TrimExported(e.ctx, last)
		if err != nil || n != 3 {
			t.Fatalf("trim: %d %v", n, err)
		}
		if rep, err := e.db.VerifyAudit(e.ctx); err != nil || !rep.OK || rep.Checked != 1 {
			t.Fatalf("verify after trim: %+v %v", rep, err)
		}
		must(t, e.db.Audit(e.ctx, "quinn", store.Event{At: e.db.Now(), Type: "token.refused"}))
		if rep, err := e.db.VerifyAudit(e.ctx); err != nil || !rep.OK || rep.Checked != 2 {
			t.Fatalf("verify after trim and append: %+v %v", rep, err)
		}
	}},
	{"ruleset versions and rollback", []string{"SaveRulesetVersion", "ActiveRuleset", "RulesetVersions", "RollbackRuleset", "RulesState", "RulesChannel", "SubscribeRules"}, func(t *testing.T, e env) {
		ps := e.db.SubscribeRules(e.ctx)
		defer ps.Close()
		if _, err := ps.Receive(e.ctx); err != nil { // the subscription
			t.Fatal(err)
		}
		if e.db.RulesChannel() == "" {
			t.Fatal("no rules channel")
		}
		if _, err := e.db.ActiveRuleset(e.ctx); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("active before any: %v", err)
		}
		v1, err := e.db.SaveRulesetVersion(e.ctx, store.NewRuleset{Name: "a", Digest: "d1", Source: []byte("src1"), By: "ops", OnlyIfNone: true})
		if err != nil || v1 != 1 {
			t.Fatalf("first: %d %v", v1, err)
		}
		if m := receive(t, ps); m != store.RulesMessageActive+" 1" {
			t.Fatalf("announced %q", m)
		}
		if _, err := e.db.SaveRulesetVersion(e.ctx, store.NewRuleset{Name: "a", Source: []byte("x"), OnlyIfNone: true}); !errors.Is(err, store.ErrExists) {
			t.Fatalf("only if none: %v", err)
		}
		v2, err := e.db.SaveRulesetVersion(e.ctx, store.NewRuleset{Name: "b", Digest: "d2", Source: []byte("src2"), By: "ops", Comment: "why"})
		if err != nil || v2 != 2 {
			t.Fatalf("second: %d %v", v2, err)
		}
		receive(t, ps)
		must(t, e.db.RollbackRuleset(e.ctx, 1, "ops"))
		if err := e.db.RollbackRuleset(e.ctx, 9, "ops"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("rollback to nothing: %v", err)
		}
		act, err := e.db.ActiveRuleset(e.ctx)
		if err != nil || act.Version != 1 || string(act.Source) != "src1" || !act.Active {
			t.Fatalf("active after rollback: %+v %v", act, err)
		}
		vs, err := e.db.RulesetVersions(e.ctx)
		if err != nil || len(vs) != 2 || vs[0].Version != 2 || vs[0].Active || !vs[1].Active || vs[0].Comment != "why" {
			t.Fatalf("versions: %+v %v", vs, err)
		}
		if a, shadow, err := e.db.RulesState(e.ctx); err != nil || a != 1 || shadow != "" {
			t.Fatalf("state: %d %q %v", a, shadow, err)
		}
	}},
	{"shadow ruleset and stats", []string{"SetShadowRuleset", "Shadow", "AddShadowStats", "ClearShadowRuleset", "RulesState"}, func(t *testing.T, e env) {
		if _, _, err := e.db.Shadow(e.ctx); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("shadow before any: %v", err)
		}
		must(t, e.db.SetShadowRuleset(e.ctx, store.ShadowRuleset{Name: "s", Digest: "s1", Source: []byte("src"), SetBy: "ops"}))
		must(t, e.db.AddShadowStats(e.ctx, "s1", store.ShadowStats{Total: 3, Changed: 1, Moves: map[string]int64{"policy->device": 1}}))
		must(t, e.db.AddShadowStats(e.ctx, "old", store.ShadowStats{Total: 100}))
		s, st, err := e.db.Shadow(e.ctx)
		if err != nil || s.Digest != "s1" || string(s.Source) != "src" || st.Total != 3 || st.Changed != 1 || st.Moves["policy->device"] != 1 {
			t.Fatalf("shadow: %+v %+v %v", s, st, err)
		}
		if _, digest, _ := e.db.RulesState(e.ctx); digest != "s1" {
			t.Fatalf("state digest %q", digest)
		}
		must(t, e.db.SetShadowRuleset(e.ctx, store.ShadowRuleset{Name: "s", Digest: "s2", Source: []byte("src2"), SetBy: "ops"}))
		if _, st, _ := e.db.Shadow(e.ctx); st.Total != 0 {
			t.Fatalf("counts not reset by a new shadow: %+v", st)
		}
		must(t, e.db.ClearShadowRuleset(e.ctx, "ops"))
		if err := e.db.ClearShadowRuleset(e.ctx, "ops"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("clear twice: %v", err)
		}
	}},
	{"connection", []string{"Ping", "Redis"}, func(t *testing.T, e env) {
		must(t, e.db.Ping(e.ctx))
		if e.db.Redis() == nil {
			t.Fatal("no client")
		}
	}},
	{"rate limit windows: totals across callers, a fresh window at zero, refunds", []string{"AddHits"}, func(t *testing.T, e env) {
		ip, cl := store.RateKey{Kind: "ip", ID: "192.0.2.1"}, store.RateKey{Kind: "client", ID: "agent-1"}
		now := e.clock.Now()
		for want := int64(1); want <= 3; want++ {
			got, err := e.db.AddHits(e.ctx, time.Minute, now, []store.RateKey{ip, cl}, []int64{1, 1})
			if err != nil || got[0] != want || got[1] != want {
				t.Fatalf("hit %d: %v %v", want, got, err)
			}
		}
		// Another node adds its batch and takes one back.
		if got, err := e.db.AddHits(e.ctx, time.Minute, now, []store.RateKey{ip, cl}, []int64{5, -1}); err != nil || got[0] != 8 || got[1] != 2 {
			t.Fatalf("batch: %v %v", got, err)
		}
		if got, _ := e.db.AddHits(e.ctx, time.Minute, now.Add(time.Minute), []store.RateKey{ip}, []int64{1}); got[0] != 1 {
			t.Fatalf("next window: %v", got)
		}
	}},
}
