package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunRefusesBadInvocations(t *testing.T) {
	state := filepath.Join(t.TempDir(), "phone.json")
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--auto", "maybe", "--server", "http://127.0.0.1:1"}, "--auto must be approve or deny"},
		{[]string{"--server", "http://127.0.0.1:1", "extra"}, "unexpected arguments"},
		{[]string{"--listen", "127.0.0.1:0"}, "no server URL"},
		{[]string{"--server", "ftp://x"}, "not an absolute http(s) URL"},
		{[]string{"--server", "http://127.0.0.1:1", "--state", state}, "not enrolled: pass --enroll CODE"},
	}
	for _, c := range cases {
		var out, errOut bytes.Buffer
		err := run(context.Background(), c.args, &out, &errOut)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("run(%q) = %v, want an error containing %q", c.args, err, c.want)
		}
	}
	// The refused run still created the keys, private to the user.
	info, err := os.Stat(state)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("state file %v, %v; want mode 0600", info, err)
	}
}
