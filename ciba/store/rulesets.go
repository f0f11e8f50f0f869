package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Ruleset versions live in the {dir} slot, so that activation, rollback
// and their audit events are single-slot scripts:
//
//	{dir}:rules:seq           the last version number (INCR)
//	{dir}:rules:meta          hash: version -> JSON {name, digest, created_at, created_by, comment}
//	{dir}:rules:src           hash: version -> the YAML source
//	{dir}:rules:activated     hash: version -> JSON {at, by} of its latest activation
//	{dir}:rules:active        the active version number
//	{dir}:rules:shadow        hash: src, digest, name, set_at, set_by (the shadow candidate)
//	{dir}:rules:shadow-stats  hash: digest, total, changed, m:<from>-><to> (every node's counts)
//
// Every change publishes on the channel <prefix>rules: "active <version>"
// or "shadow". The message is only a hint: nodes re-read the keys on
// (re)subscribe and periodically, so a lost message delays, never loses,
// a change. Versions are kept forever (a version is at most one 64 KiB
// request body).
func (db *DB) rulesKey(name string) string { return db.dir() + "rules:" + name }

// RulesChannel is the pub/sub channel on which ruleset changes are
// announced.
func (db *DB) RulesChannel() string { return db.prefix + "rules" }

// SubscribeRules subscribes to RulesChannel. The caller reads with
// Receive (a *redis.Subscription arrives on every (re)subscription) and
// closes it.
func (db *DB) SubscribeRules(ctx context.Context) *redis.PubSub {
	return db.rdb.Subscribe(ctx, db.RulesChannel())
}

// Messages published on RulesChannel.
const (
	RulesMessageActive = "active" // followed by " <version>"
	RulesMessageShadow = "shadow"
)

// Audit event types of rule changes (the directory chain).
const (
	EventRulesActivated     = "rules.activated"
	EventRulesRolledBack    = "rules.rolled_back"
	EventRulesShadowSet     = "rules.shadow_set"
	EventRulesShadowCleared = "rules.shadow_cleared"
)

// NewRuleset is a ruleset to store as a new version and activate. The
// caller has compiled and tested it; the store does not read rules.
type NewRuleset struct {
	Name    string
	Digest  string // hex SHA-256 of Source
	Source  []byte
	By      string // the admin name (activated_by)
	Comment string
	// OnlyIfNone stores nothing, and returns ErrExists, when a version is
	// already active (the ruleset a node activates at start).
	OnlyIfNone bool
}

// RulesetVersion is one stored version (docs/api.md GET /admin/rules/versions).
type RulesetVersion struct {
	Version     int64     `json:"version"`
	Name        string    `json:"name"`
	Digest      string    `json:"digest"`
	CreatedAt   time.Time `json:"created_at"`
	CreatedBy   string    `json:"created_by"`
	Comment     string    `json:"comment"`
	ActivatedAt time.Time `json:"activated_at"`
	ActivatedBy string    `json:"activated_by"`
	Active      bool      `json:"active"`
	Source      []byte    `json:"-"` // set by ActiveRuleset only
}

type rulesetMeta struct {
	Name      string    `json:"name"`
	Digest    string    `json:"digest"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by"`
	Comment   string    `json:"comment,omitempty"`
}

type rulesetActivation struct {
	At time.Time `json:"at"`
	By string    `json:"by"`
}

// scriptSaveRuleset is lua/save_ruleset.lua; the names are its KEYS and ARGV as
// passed below, in order.
var scriptSaveRuleset = newAudited("save_ruleset", []string{"seq", "meta", "src", "activated", "active"},
	[]string{"version", "only_if_none", "meta", "src", "activation", "channel", "message"})

// SaveRulesetVersion stores r as the next version and makes it active, with
// its audit event and the announcement on RulesChannel, in one script
// (issue 8 "Versions": every activation is kept with its version, time,
// author and comment). It returns the new version number.
func (db *DB) SaveRulesetVersion(ctx context.Context, r NewRuleset) (int64, error) {
	now := db.Now().UTC()
	meta, err := json.Marshal(rulesetMeta{Name: r.Name, Digest: r.Digest, CreatedAt: now, CreatedBy: r.By, Comment: r.Comment})
	if err != nil {
		return 0, err
	}
	act, err := json.Marshal(rulesetActivation{At: now, By: r.By})
	if err != nil {
		return 0, err
	}
	onlyIfNone := "0"
	if r.OnlyIfNone {
		onlyIfNone = "1"
	}
	keys := []string{db.rulesKey("seq"), db.rulesKey("meta"), db.rulesKey("src"), db.rulesKey("activated"), db.rulesKey("active")}
	// The version is in the audit event, whose hash is computed before the
	// script runs: read the sequence, and let the script refuse (and us
	// retry) when another node took that number first.
	for attempt := 0; attempt < 8; attempt++ {
		seq, err := db.rdb.Get(ctx, db.rulesKey("seq")).Int64()
		if err != nil && !errors.Is(err, redis.Nil) {
			return 0, err
		}
		v := seq + 1
		ev := Event{At: now, Type: EventRulesActivated, Actors: []string{r.By},
			Detail: rulesDetail(v, r.Name, r.Digest, r.Comment)}
		res, err := db.runAudited(ctx, scriptSaveRuleset, dirShard, keys,
			[]any{v, onlyIfNone, meta, r.Source, act, db.RulesChannel(), RulesMessageActive}, []Event{ev})
		if err != nil {
			return 0, err
		}
		switch res[0] {
		case "ok":
			return v, nil
		case "exists":
			return 0, ErrExists
		case "seq":
			continue
		}
		return 0, fmt.Errorf("store: save ruleset: unexpected reply %v", res)
	}
	return 0, errors.New("store: ruleset versions too contended")
}

// scriptActivateRuleset is lua/activate_ruleset.lua; the names are its KEYS and ARGV as
// passed below, in order.
var scriptActivateRuleset = newAudited("activate_ruleset", []string{"meta", "activated", "active"}, []string{"version", "activation", "channel", "message"})

// RollbackRuleset makes an earlier (or any stored) version active again,
// with its audit event and announcement, in one script (docs/api.md POST
// /admin/rules/rollback). ErrNotFound when there is no such version.
func (db *DB) RollbackRuleset(ctx context.Context, version int64, by string) error {
	now := db.Now().UTC()
	act, err := json.Marshal(rulesetActivation{At: now, By: by})
	if err != nil {
		return err
	}
	ev := Event{At: now, Type: EventRulesRolledBack, Actors: []string{by}, Detail: fmt.Sprintf("version %d", version)}
	v := itoa(version)
	res, err := db.runAudited(ctx, scriptActivateRuleset, dirShard,
		[]string{db.rulesKey("meta"), db.rulesKey("activated"), db.rulesKey("active")},
		[]any{v, act, db.RulesChannel(), RulesMessageActive + " " + v}, []Event{ev})
	if err != nil {
		return err
	}
	if res[0] == "missing" {
		return ErrNotFound
	}
	return nil
}

func rulesDetail(v int64, name, digest, comment string) string {
	s := fmt.Sprintf("version %d (%s, sha256 %s)", v, name, digest)
	if comment != "" {
		s += ": " + comment
	}
	return s
}

// scriptActiveRuleset is lua/active_ruleset.lua; the names are its KEYS and ARGV as
// passed below, in order.
var scriptActiveRuleset = newLua("active_ruleset", []string{"active", "meta", "src", "activated"}, nil)

// ActiveRuleset returns the active version with its source, read
// atomically; ErrNotFound when no version was ever activated.
func (db *DB) ActiveRuleset(ctx context.Context) (*RulesetVersion, error) {
	res, err := scriptActiveRuleset.Run(ctx, db.rdb, []string{db.rulesKey("active"), db.rulesKey("meta"),
		db.rulesKey("src"), db.rulesKey("activated")}).StringSlice()
	if err != nil {
		return nil, err
	}
	if len(res) != 4 {
		return nil, ErrNotFound
	}
	n, err := strconv.ParseInt(res[0], 10, 64)
	if err != nil {
		return nil, fmt.Errorf("store: active ruleset version %q: %w", res[0], err)
	}
	rv, err := decodeVersion(n, res[1], res[3])
	if err != nil {
		return nil, err
	}
	rv.Active, rv.Source = true, []byte(res[2])
	return rv, nil
}

func decodeVersion(n int64, meta, act string) (*RulesetVersion, error) {
	var m rulesetMeta
	if err := json.Unmarshal([]byte(meta), &m); err != nil {
		return nil, fmt.Errorf("store: ruleset version %d: %w", n, err)
	}
	rv := &RulesetVersion{Version: n, Name: m.Name, Digest: m.Digest, CreatedAt: m.CreatedAt, CreatedBy: m.CreatedBy, Comment: m.Comment}
	var a rulesetActivation
	if act != "" && json.Unmarshal([]byte(act), &a) == nil {
		rv.ActivatedAt, rv.ActivatedBy = a.At, a.By
	}
	return rv, nil
}

// RulesState is what a node compares with what it runs, cheaply, on its
// periodic check: the active version (0 when none) and the shadow
// ruleset's digest ("" when none).
func (db *DB) RulesState(ctx context.Context) (active int64, shadowDigest string, err error) {
	pipe := db.rdb.Pipeline()
	a := pipe.Get(ctx, db.rulesKey("active"))
	s := pipe.HGet(ctx, db.rulesKey("shadow"), "digest")
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return 0, "", err
	}
	if v, err := a.Int64(); err == nil {
		active = v
	}
	return active, s.Val(), nil
}

// RulesetVersions lists every stored version, newest first, without
// sources.
func (db *DB) RulesetVersions(ctx context.Context) ([]RulesetVersion, error) {
	pipe := db.rdb.Pipeline()
	metas := pipe.HGetAll(ctx, db.rulesKey("meta"))
	acts := pipe.HGetAll(ctx, db.rulesKey("activated"))
	active := pipe.Get(ctx, db.rulesKey("active"))
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	cur, _ := active.Int64()
	out := make([]RulesetVersion, 0, len(metas.Val()))
	for k, meta := range metas.Val() {
		n, err := strconv.ParseInt(k, 10, 64)
		if err != nil {
			continue
		}
		rv, err := decodeVersion(n, meta, acts.Val()[k])
		if err != nil {
			return nil, err
		}
		rv.Active = n == cur
		out = append(out, *rv)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version > out[j].Version })
	return out, nil
}

// ShadowRuleset is the candidate evaluated next to the active ruleset on
// live traffic (issue 8 "Shadow mode").
type ShadowRuleset struct {
	Name   string    `json:"name"`
	Digest string    `json:"digest"`
	Source []byte    `json:"-"`
	SetAt  time.Time `json:"set_at"`
	SetBy  string    `json:"set_by"`
}

// ShadowStats are the differences between the active and the shadow
// ruleset, summed over every node since the shadow was set.
type ShadowStats struct {
	Total   int64            `json:"total"`
	Changed int64            `json:"changed"`
	Moves   map[string]int64 `json:"moves"` // "policy->device": N
}

// scriptSetShadow is lua/set_shadow.lua; the names are its KEYS and ARGV as
// passed below, in order.
var scriptSetShadow = newAudited("set_shadow", []string{"shadow", "stats"}, []string{"src", "digest", "name", "set_at", "set_by", "channel", "message"})

// SetShadowRuleset stores a shadow candidate (replacing any other and
// resetting the counts), audits and announces it, in one script.
func (db *DB) SetShadowRuleset(ctx context.Context, s ShadowRuleset) error {
	now := db.Now().UTC()
	ev := Event{At: now, Type: EventRulesShadowSet, Actors: []string{s.SetBy},
		Detail: fmt.Sprintf("shadow %s, sha256 %s", s.Name, s.Digest)}
	_, err := db.runAudited(ctx, scriptSetShadow, dirShard, []string{db.rulesKey("shadow"), db.rulesKey("shadow-stats")},
		[]any{s.Source, s.Digest, s.Name, now.Format(time.RFC3339Nano), s.SetBy, db.RulesChannel(), RulesMessageShadow},
		[]Event{ev})
	return err
}

// scriptClearShadow is lua/clear_shadow.lua; the names are its KEYS and ARGV as
// passed below, in order.
var scriptClearShadow = newAudited("clear_shadow", []string{"shadow", "stats"}, []string{"channel", "message"})

// ClearShadowRuleset turns shadow mode off; ErrNotFound when it was off.
func (db *DB) ClearShadowRuleset(ctx context.Context, by string) error {
	ev := Event{At: db.Now().UTC(), Type: EventRulesShadowCleared, Actors: []string{by}}
	res, err := db.runAudited(ctx, scriptClearShadow, dirShard, []string{db.rulesKey("shadow"), db.rulesKey("shadow-stats")},
		[]any{db.RulesChannel(), RulesMessageShadow}, []Event{ev})
	if err != nil {
		return err
	}
	if res[0] == "missing" {
		return ErrNotFound
	}
	return nil
}

// Shadow returns the shadow ruleset (with its source) and the counts so
// far; ErrNotFound when shadow mode is off.
func (db *DB) Shadow(ctx context.Context) (*ShadowRuleset, *ShadowStats, error) {
	pipe := db.rdb.Pipeline()
	sh := pipe.HGetAll(ctx, db.rulesKey("shadow"))
	st := pipe.HGetAll(ctx, db.rulesKey("shadow-stats"))
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, nil, err
	}
	m := sh.Val()
	if m["digest"] == "" {
		return nil, nil, ErrNotFound
	}
	s := &ShadowRuleset{Name: m["name"], Digest: m["digest"], Source: []byte(m["src"]), SetBy: m["set_by"]}
	s.SetAt, _ = time.Parse(time.RFC3339Nano, m["set_at"])
	stats := &ShadowStats{Moves: map[string]int64{}}
	if c := st.Val(); c["digest"] == s.Digest {
		stats.Total, _ = strconv.ParseInt(c["total"], 10, 64)
		stats.Changed, _ = strconv.ParseInt(c["changed"], 10, 64)
		for k, v := range c {
			if move, ok := strings.CutPrefix(k, "m:"); ok {
				stats.Moves[move], _ = strconv.ParseInt(v, 10, 64)
			}
		}
	}
	return s, stats, nil
}

// scriptAddShadowStats is lua/add_shadow_stats.lua; the names are its KEYS and ARGV as
// passed below, in order.
var scriptAddShadowStats = newLua("add_shadow_stats", []string{"shadow", "stats"}, []string{"digest", "total", "changed", "moves..."})

// AddShadowStats adds one node's counts for the shadow ruleset digest. The
// counts are dropped when that shadow is no longer the one set, so a
// replaced candidate's late counts never mix with the new one's.
func (db *DB) AddShadowStats(ctx context.Context, digest string, d ShadowStats) error {
	args := []any{digest, d.Total, d.Changed}
	for k, v := range d.Moves {
		args = append(args, k, v)
	}
	return scriptAddShadowStats.Run(ctx, db.rdb, []string{db.rulesKey("shadow"), db.rulesKey("shadow-stats")}, args...).Err()
}
