package store

import (
	"context"
	"embed"
	"fmt"
	"regexp"
	"strings"

	"github.com/redis/go-redis/v9"
)

// The scripts live in lua/*.lua, each with a table of its KEYS, ARGV and
// return values at the top; the helpers they share are in lua/lib.
//
//go:embed lua/*.lua lua/lib/*.lua
var luaFS embed.FS

// luaScript is one embedded script with the names of the KEYS and ARGV
// its Go caller passes, in order. A last ARGV name ending in "..." takes
// the rest of the arguments. The names are compared with the script's own
// table by a test, and the counts are checked on every call, so the Go
// side and the Lua side cannot drift apart unnoticed.
type luaScript struct {
	*redis.Script
	name       string
	keys, args []string
}

var includeLine = regexp.MustCompile(`(?m)^-- include: (.+)$`)

// newLua loads lua/<name>.lua, prepending the lua/lib files its
// "-- include:" line names, with keys and args as the Go caller passes them.
func newLua(name string, keys, args []string) *luaScript {
	body := mustRead("lua/" + name + ".lua")
	var src strings.Builder
	if m := includeLine.FindStringSubmatch(body); m != nil {
		for _, lib := range strings.Fields(m[1]) {
			src.WriteString(mustRead("lua/lib/" + lib + ".lua"))
		}
	}
	src.WriteString(body)
	s := &luaScript{Script: redis.NewScript(src.String()), name: name, keys: keys, args: args}
	scripts = append(scripts, s)
	return s
}

// scripts are all the scripts loaded, for the test that compares their
// declarations with their files.
var scripts []*luaScript

func mustRead(path string) string {
	b, err := luaFS.ReadFile(path)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// withAudit appends the audit stream and head keys and the audit
// arguments that runAudited passes last.
func withAudit(keys, args []string) ([]string, []string) {
	return append(append([]string{}, keys...), "audit", "audit_head"), append(append([]string{}, args...), "audit...")
}

// newAudited is newLua for a script run by runAudited.
func newAudited(name string, keys, args []string) *luaScript {
	k, a := withAudit(keys, args)
	return newLua(name, k, a)
}

// check refuses a call whose KEYS or ARGV count differs from the
// declaration: a mismatch is a bug, and a script reading the wrong
// position must never run.
func (s *luaScript) check(keys []string, args []any) error {
	if len(keys) != len(s.keys) {
		return fmt.Errorf("store: script %s: %d keys, declared %d", s.name, len(keys), len(s.keys))
	}
	n := len(s.args)
	if n > 0 && strings.HasSuffix(s.args[n-1], "...") {
		if len(args) < n-1 {
			return fmt.Errorf("store: script %s: %d args, declared at least %d", s.name, len(args), n-1)
		}
		return nil
	}
	if len(args) != n {
		return fmt.Errorf("store: script %s: %d args, declared %d", s.name, len(args), n)
	}
	return nil
}

func (s *luaScript) refused(ctx context.Context, err error) *redis.Cmd {
	cmd := redis.NewCmd(ctx)
	cmd.SetErr(err)
	return cmd
}

// Run is redis.Script.Run (EVALSHA, EVAL on NOSCRIPT) after check.
func (s *luaScript) Run(ctx context.Context, c redis.Scripter, keys []string, args ...any) *redis.Cmd {
	if err := s.check(keys, args); err != nil {
		return s.refused(ctx, err)
	}
	return s.Script.Run(ctx, c, keys, args...)
}

// Eval is redis.Script.Eval after check.
func (s *luaScript) Eval(ctx context.Context, c redis.Scripter, keys []string, args ...any) *redis.Cmd {
	if err := s.check(keys, args); err != nil {
		return s.refused(ctx, err)
	}
	return s.Script.Eval(ctx, c, keys, args...)
}

// EvalSha is redis.Script.EvalSha after check.
func (s *luaScript) EvalSha(ctx context.Context, c redis.Scripter, keys []string, args ...any) *redis.Cmd {
	if err := s.check(keys, args); err != nil {
		return s.refused(ctx, err)
	}
	return s.Script.EvalSha(ctx, c, keys, args...)
}
