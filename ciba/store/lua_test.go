package store

import (
	"bufio"
	"io/fs"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// luaHeader is the KEYS and ARGV table at the top of a script file.
type luaHeader struct {
	keys, args []string
	// maxKey and maxArg are the highest KEYS[n] and ARGV[n] in the body.
	maxKey, maxArg int
}

var (
	headerRow = regexp.MustCompile(`^--\s+(\d+)(\.\.)?\s+(\S+)`)
	keyUse    = regexp.MustCompile(`KEYS\[(\d+)\]`)
	argUse    = regexp.MustCompile(`ARGV\[(\d+)\]`)
)

func parseHeader(t *testing.T, name, src string) luaHeader {
	var h luaHeader
	section := ""
	sc := bufio.NewScanner(strings.NewReader(src))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "-- KEYS"):
			section = "keys"
			continue
		case strings.HasPrefix(line, "-- ARGV"):
			section = "args"
			continue
		case strings.HasPrefix(line, "-- RETURNS"):
			section = "returns"
			continue
		case !strings.HasPrefix(line, "--"):
			section = "body"
		}
		if m := headerRow.FindStringSubmatch(line); m != nil && (section == "keys" || section == "args") {
			list := &h.keys
			if section == "args" {
				list = &h.args
			}
			if n, _ := strconv.Atoi(m[1]); n != len(*list)+1 {
				t.Errorf("%s: %s row %s out of order", name, section, m[1])
			}
			if (m[2] != "") != strings.HasSuffix(m[3], "...") {
				t.Errorf("%s: row %q: a range must be named name...", name, line)
			}
			*list = append(*list, m[3])
		}
		if section == "body" {
			for _, m := range keyUse.FindAllStringSubmatch(line, -1) {
				n, _ := strconv.Atoi(m[1])
				h.maxKey = max(h.maxKey, n)
			}
			for _, m := range argUse.FindAllStringSubmatch(line, -1) {
				n, _ := strconv.Atoi(m[1])
				h.maxArg = max(h.maxArg, n)
			}
		}
	}
	if section == "" {
		t.Errorf("%s: no KEYS/ARGV table", name)
	}
	return h
}

// TestLuaDeclarationsMatchCallers compares, for every script, the KEYS and
// ARGV names its Go caller declares (and check enforces on every call)
// with the table at the top of its .lua file, and checks that the body
// reads no position beyond the table.
func TestLuaDeclarationsMatchCallers(t *testing.T) {
	files, err := fs.Glob(luaFS, "lua/*.lua")
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*luaScript{}
	for _, s := range scripts {
		if byName[s.name] != nil {
			t.Errorf("script %s loaded twice", s.name)
		}
		byName[s.name] = s
	}
	if len(files) != len(byName) {
		t.Errorf("%d script files, %d scripts loaded", len(files), len(byName))
	}
	for _, f := range files {
		name := strings.TrimSuffix(strings.TrimPrefix(f, "lua/"), ".lua")
		s := byName[name]
		if s == nil {
			t.Errorf("%s: no Go caller declares it", f)
			continue
		}
		h := parseHeader(t, f, mustRead(f))
		if !slices.Equal(h.keys, s.keys) {
			t.Errorf("%s: KEYS table %q, Go caller passes %q", f, h.keys, s.keys)
		}
		if !slices.Equal(h.args, s.args) {
			t.Errorf("%s: ARGV table %q, Go caller passes %q", f, h.args, s.args)
		}
		if h.maxKey > len(h.keys) {
			t.Errorf("%s: reads KEYS[%d], declares %d", f, h.maxKey, len(h.keys))
		}
		variadic := len(h.args) > 0 && strings.HasSuffix(h.args[len(h.args)-1], "...")
		if !variadic && h.maxArg > len(h.args) {
			t.Errorf("%s: reads ARGV[%d], declares %d", f, h.maxArg, len(h.args))
		}
	}
}

// TestLuaCallCountsChecked shows that a call with a KEYS or ARGV count
// other than declared is refused before it reaches Redis.
func TestLuaCallCountsChecked(t *testing.T) {
	cases := []struct {
		s    *luaScript
		keys []string
		args []any
		ok   bool
	}{
		{scriptPoll, []string{"k"}, []any{"c", 1}, true},
		{scriptPoll, []string{"k", "extra"}, []any{"c", 1}, false},
		{scriptPoll, []string{"k"}, []any{"c"}, false},
		{scriptAddShadowStats, []string{"a", "b"}, []any{"d", 1, 2}, true},
		{scriptAddShadowStats, []string{"a", "b"}, []any{"d", 1, 2, "m", 1}, true},
		{scriptAddShadowStats, []string{"a", "b"}, []any{"d", 1}, false},
	}
	for i, c := range cases {
		if err := c.s.check(c.keys, c.args); (err == nil) != c.ok {
			t.Errorf("case %d (%s): check = %v, want ok %v", i, c.s.name, err, c.ok)
		}
	}
}
