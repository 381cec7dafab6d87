package e2e

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// The documentation's fenced code blocks, read so that TestDocCommands can
// run every shell command a reader is told to type, and TestDocLinks can
// check every relative link.
//
// The convention (docs/README.md says it to
// writers): every fence names a language; a shell fence (sh, bash, shell)
// adds one tag after it:
//
//	```sh run                 the test runs it, in file order, in one shell per file
//	```sh run expect-fail     the test runs it and it must fail (an example of an error answer)
//	```sh norun:REASON        the test cannot run it (systemd, root, a command that never returns)
//
// In a run block each curl must carry -f (or --fail, --fail-with-body), so
// that an example answering 4xx or 5xx fails the test.

// docBlock is one fenced code block of a documentation file.
type docBlock struct {
	file string // relative to the repository root
	line int    // of the opening fence, 1-based
	lang string
	tags []string
	text string
}

func (b docBlock) where() string { return fmt.Sprintf("%s:%d", b.file, b.line) }

// shell says whether the block holds commands for a shell.
func (b docBlock) shell() bool {
	switch b.lang {
	case "sh", "bash", "shell":
		return true
	}
	return false
}

// mode is "run", "norun" or "" (untagged), and whether a run block must fail.
func (b docBlock) mode() (mode string, expectFail bool, reason string) {
	for _, t := range b.tags {
		switch {
		case t == "run":
			mode = "run"
		case t == "expect-fail":
			expectFail = true
		case strings.HasPrefix(t, "norun:"):
			mode, reason = "norun", strings.TrimPrefix(t, "norun:")
		}
	}
	return mode, expectFail, reason
}

// repoRoot is the repository's top directory, from this package's.
func repoRoot() string {
	dir, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		panic(err)
	}
	return dir
}

// docFiles are README.md, then docs/*.md in name order: the order their
// run blocks execute in (the README links organization 2 first).
func docFiles(root string) ([]string, error) {
	files := []string{"README.md"}
	more, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		return nil, err
	}
	for _, f := range more {
		rel, err := filepath.Rel(root, f)
		if err != nil {
			return nil, err
		}
		files = append(files, rel)
	}
	return files, nil
}

var fenceRe = regexp.MustCompile("^( *)(```+)(.*)$")

// readBlocks returns a file's fenced blocks, their text without the
// indentation of their opening fence (blocks inside list items).
func readBlocks(root, file string) ([]docBlock, error) {
	f, err := os.Open(filepath.Join(root, file))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var (
		blocks []docBlock
		cur    *docBlock
		indent string
		fence  string
		body   []string
		n      int
	)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		n++
		line := sc.Text()
		m := fenceRe.FindStringSubmatch(line)
		if cur == nil {
			if m == nil {
				continue
			}
			words := strings.Fields(m[3])
			b := docBlock{file: file, line: n}
			if len(words) > 0 {
				b.lang, b.tags = words[0], words[1:]
			}
			cur, indent, fence, body = &b, m[1], m[2], nil
			continue
		}
		if m != nil && m[2] == fence && strings.TrimSpace(m[3]) == "" {
			cur.text = strings.Join(body, "\n") + "\n"
			blocks = append(blocks, *cur)
			cur = nil
			continue
		}
		body = append(body, strings.TrimPrefix(line, indent))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	if cur != nil {
		return nil, fmt.Errorf("%s: fence opened and never closed", cur.where())
	}
	return blocks, nil
}

// curlWithoutFail finds a curl command in a block that would not fail on
// an HTTP error. Continuation lines are joined first.
func curlWithoutFail(text string) string {
	joined := strings.ReplaceAll(text, "\\\n", " ")
	for _, line := range strings.Split(joined, "\n") {
		code, _, _ := strings.Cut(line, "#")
		for _, cmd := range regexp.MustCompile(`[|;&]|\$\(`).Split(code, -1) {
			f := strings.Fields(cmd)
			if len(f) == 0 || f[0] != "curl" {
				continue
			}
			fails := false
			for _, a := range f[1:] {
				if a == "--fail" || a == "--fail-with-body" || regexp.MustCompile(`^-[a-zA-Z]*f[a-zA-Z]*$`).MatchString(a) {
					fails = true
				}
			}
			if !fails {
				return strings.TrimSpace(line)
			}
		}
	}
	return ""
}

// checkTags returns one sentence per block that breaks the convention.
func checkTags(blocks []docBlock) []string {
	var bad []string
	for _, b := range blocks {
		if b.lang == "" {
			bad = append(bad, b.where()+": a fence without a language (use text, toml, json, python, or sh with a tag)")
			continue
		}
		mode, expectFail, reason := b.mode()
		if !b.shell() {
			if len(b.tags) > 0 && (mode != "" || expectFail) {
				bad = append(bad, b.where()+": run/norun tags are for sh blocks only")
			}
			continue
		}
		switch {
		case mode == "":
			bad = append(bad, b.where()+": a shell block needs a tag: ```sh run, or ```sh norun:REASON")
		case mode == "norun" && reason == "":
			bad = append(bad, b.where()+": norun needs a reason: ```sh norun:REASON")
		case mode == "norun" && expectFail:
			bad = append(bad, b.where()+": expect-fail is for run blocks")
		case mode == "run" && !expectFail:
			if c := curlWithoutFail(b.text); c != "" {
				bad = append(bad, fmt.Sprintf("%s: curl without -f would not fail on an HTTP error: %s", b.where(), c))
			}
		}
	}
	return bad
}

// script is one file's run blocks as one bash script, run as a reader
// would type them in one terminal: variables carry from block to block,
// and the first command that fails names its block.
func script(blocks []docBlock, rewrite *strings.Replacer) string {
	var s strings.Builder
	s.WriteString("set -eo pipefail\ntrap 'echo \"doc test: block $__doc_block failed\" >&2' ERR\n")
	for _, b := range blocks {
		mode, expectFail, _ := b.mode()
		if !b.shell() || mode != "run" {
			continue
		}
		text := rewrite.Replace(b.text)
		fmt.Fprintf(&s, "__doc_block=%q\necho \"--- $__doc_block\" >&2\n", b.where())
		if expectFail {
			fmt.Fprintf(&s, "if (\n%s); then echo \"doc test: block $__doc_block succeeded, but it shows a failure\" >&2; exit 1; fi\n", text)
			continue
		}
		s.WriteString(text)
	}
	return s.String()
}
