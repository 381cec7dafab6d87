package sandbox

import (
	"errors"
	"strings"
	"testing"
)

// Apply itself confines the calling process for good, so it runs in real
// worker processes only (worker/cmd/wa-worker and supervisor/e2e tests);
// here are the decisions around it.

func TestParseMode(t *testing.T) {
	for in, want := range map[string]Mode{"": BestEffort, "best_effort": BestEffort, "require": Require, "off": Off} {
		if got, err := ParseMode(in); err != nil || got != want {
			t.Errorf("ParseMode(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseMode("strict"); err == nil || !strings.Contains(err.Error(), `"strict"`) {
		t.Errorf("ParseMode(strict) = %v, want an error naming it", err)
	}
}

func TestRequireNamesWhatTheKernelLacks(t *testing.T) {
	cases := []struct {
		abi, want int
		says      string // "" = enough
	}{
		{0, 4, "no Landlock"},
		{3, 4, "offers Landlock ABI 3 and the worker needs ABI 4"},
		{4, 4, ""},
		{7, 4, ""},
		{7, 99, "needs ABI 99"},
	}
	for _, c := range cases {
		err := enough(c.abi, c.want)
		switch {
		case c.says == "" && err != nil:
			t.Errorf("enough(%d, %d) = %v, want nil", c.abi, c.want, err)
		case c.says != "" && (err == nil || !strings.Contains(err.Error(), c.says) || !strings.Contains(err.Error(), `sandbox = "require"`)):
			t.Errorf("enough(%d, %d) = %v, want a sentence with %q", c.abi, c.want, err, c.says)
		}
	}
}

func TestDescribe(t *testing.T) {
	cases := []struct {
		abi        int
		ll, sc     error
		want, lack string
	}{
		{7, nil, nil, "landlock abi 7: fs, net, scope; seccomp: no unix sockets; nnp, no core, 1024 files", ""},
		{4, nil, nil, "landlock abi 4: fs, net; seccomp", "scope"},
		{3, nil, nil, "landlock abi 3: fs (no tcp port rules: needs abi 4)", "net"},
		{0, nil, nil, "no landlock (the kernel lacks it); seccomp", ""},
		{7, errors.New("landlock: x"), errors.New("seccomp: y"), "no landlock (landlock: x); no seccomp (seccomp: y)", ""},
	}
	for _, c := range cases {
		got := describe(c.abi, c.ll, c.sc)
		if !strings.HasPrefix(got, c.want) || (c.lack != "" && strings.Contains(got, c.lack)) {
			t.Errorf("describe(%d, %v, %v) = %q, want it to start with %q", c.abi, c.ll, c.sc, got, c.want)
		}
	}
}

func TestApplyOffDoesNothing(t *testing.T) {
	res, err := Apply(Policy{Mode: Off, AuthDir: t.TempDir()})
	if err != nil || res.Summary != "off" || res.Partial {
		t.Fatalf("Apply(off) = %+v, %v", res, err)
	}
}
