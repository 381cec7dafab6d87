package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDocBlockRules checks the tag convention's checks on sample pages, so
// that TestDocTags passing means something.
func TestDocBlockRules(t *testing.T) {
	for _, tc := range []struct {
		name, page string
		bad        string // a fragment of the one complaint; "" for none
	}{
		{"run with curl -fsS", "```sh run\ncurl -fsS $API/healthz\n```\n", ""},
		{"run with -sSf and --fail", "```sh run\ncurl -sSf a\ncurl --fail -s b\n```\n", ""},
		{"curl in a command substitution", "```sh run\nX=$(curl -fsS a | jq .x)\n```\n", ""},
		{"curl continued over lines", "```sh run\ncurl -H 'a: b' \\\n  -fsS a\n```\n", ""},
		{"curl without -f", "```sh run\ncurl -s -X POST -d '{}' $API/v1/orgs/2/pair-phone\n```\n", "curl without -f"},
		{"curl without -f after a pipe", "```sh run\necho x | curl -s a\n```\n", "curl without -f"},
		{"a -f in a comment does not count", "```sh run\ncurl -s a # -f\n```\n", "curl without -f"},
		{"expect-fail may lack -f", "```sh run expect-fail\ncurl -sS --fail-with-body a\ncurl -s b\n```\n", ""},
		{"untagged shell", "```sh\nls\n```\n", "needs a tag"},
		{"untagged bash, indented in a list", "- x\n\n  ```bash\n  ls\n  ```\n", "needs a tag"},
		{"norun without a reason", "```sh norun:\nls\n```\n", "needs a reason"},
		{"norun with a reason", "```sh norun:needs-root\nsudo ls\n```\n", ""},
		{"no language", "```\nls\n```\n", "without a language"},
		{"a tag on json", "```json run\n{}\n```\n", "sh blocks only"},
		{"toml needs no tag", "```toml\n[api]\n```\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "p.md"), []byte(tc.page), 0o600); err != nil {
				t.Fatal(err)
			}
			blocks, err := readBlocks(dir, "p.md")
			if err != nil {
				t.Fatal(err)
			}
			if len(blocks) != 1 {
				t.Fatalf("%d blocks, want 1", len(blocks))
			}
			bad := checkTags(blocks)
			switch {
			case tc.bad == "" && len(bad) > 0:
				t.Errorf("complaints %q, want none", bad)
			case tc.bad != "" && (len(bad) != 1 || !strings.Contains(bad[0], tc.bad)):
				t.Errorf("complaints %q, want one with %q", bad, tc.bad)
			}
		})
	}
}

// TestDocScript checks how run blocks become one script: in order, the
// addresses rewritten, an expect-fail block inverted, norun left out.
func TestDocScript(t *testing.T) {
	blocks := []docBlock{
		{file: "a.md", line: 1, lang: "sh", tags: []string{"run"}, text: "curl -fsS http://127.0.0.1:8089/healthz\n"},
		{file: "a.md", line: 5, lang: "sh", tags: []string{"norun:needs-root"}, text: "sudo reboot\n"},
		{file: "a.md", line: 9, lang: "sh", tags: []string{"run", "expect-fail"}, text: "false\n"},
		{file: "a.md", line: 13, lang: "toml", text: "x = 1\n"},
	}
	s := script(blocks, strings.NewReplacer("127.0.0.1:8089", "127.0.0.1:40001"))
	for _, want := range []string{"127.0.0.1:40001/healthz", `__doc_block="a.md:1"`, `__doc_block="a.md:9"`, "if (\nfalse\n); then"} {
		if !strings.Contains(s, want) {
			t.Errorf("script lacks %q:\n%s", want, s)
		}
	}
	for _, not := range []string{"reboot", "x = 1", "8089"} {
		if strings.Contains(s, not) {
			t.Errorf("script has %q:\n%s", not, s)
		}
	}
	if strings.Index(s, "a.md:1") > strings.Index(s, "a.md:9") {
		t.Errorf("blocks out of order:\n%s", s)
	}
}

// TestDocScriptFails runs scripts in bash: a failing run block fails the
// script and names itself, and so does an expect-fail block that succeeds.
func TestDocScriptFails(t *testing.T) {
	run := func(tags []string, text string) docBlock {
		return docBlock{file: "a.md", line: 3, lang: "sh", tags: tags, text: text}
	}
	for _, tc := range []struct {
		name   string
		blocks []docBlock
		fails  bool
	}{
		{"all good", []docBlock{run([]string{"run"}, "X=1\n"), run([]string{"run", "expect-fail"}, "test \"$X\" = 2\n")}, false},
		{"a run block fails", []docBlock{run([]string{"run"}, "false\necho never\n")}, true},
		{"a pipe's first command fails", []docBlock{run([]string{"run"}, "false | cat\n")}, true},
		{"an expect-fail block succeeds", []docBlock{run([]string{"run", "expect-fail"}, "true\n")}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := exec.Command("bash", "-c", script(tc.blocks, strings.NewReplacer())).CombinedOutput()
			if (err != nil) != tc.fails {
				t.Fatalf("error %v, want failure %v; output:\n%s", err, tc.fails, out)
			}
			if tc.fails && !strings.Contains(string(out), "a.md:3") {
				t.Errorf("the failure does not name its block:\n%s", out)
			}
			if strings.Contains(string(out), "never") {
				t.Errorf("the script went on after a failure:\n%s", out)
			}
		})
	}
}
