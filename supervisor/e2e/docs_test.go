package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
)

// Addresses the documentation writes, as `make run`'s config.toml and the
// emulator's own examples have them; the test rewrites each to the
// kernel-chosen address of its own supervisor or emulator.
const (
	docAPIAddr      = "127.0.0.1:8089"
	docMetricsAddr  = "127.0.0.1:9189"
	docEmulatorAddr = "127.0.0.1:7000"
)

// docPhones are the emulated phones that link the organizations the
// documentation names; any other organization gets a phone of its own.
var docPhones = map[string]string{"2": "573007915262"}

// docByPhoneNumber are the organizations the documentation links with a
// pairing code instead of a QR: the test's phone leaves their QR alone.
var docByPhoneNumber = map[string]bool{"3": true}

// TestDocTags checks the convention of the documentation's code blocks
// (docblocks_test.go) without running anything.
func TestDocTags(t *testing.T) {
	root := repoRoot()
	files, err := docFiles(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		blocks, err := readBlocks(root, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, bad := range checkTags(blocks) {
			t.Error(bad)
		}
	}
}

// TestDocCommands runs every `sh run` block of README.md and docs/*.md, in
// order, against one real supervisor with real workers and the emulator,
// from a directory that looks like a checkout after `make build`: bin/,
// config.toml (pointing at the emulator), scripts/ and examples/. A
// goroutine plays the reader's phone: it scans every QR on offer.
func TestDocCommands(t *testing.T) {
	if _, err := exec.LookPath("jq"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("jq is missing (apt-get install jq): the documentation's examples use it")
		}
		t.Skip("jq is missing (apt-get install jq)")
	}
	root := repoRoot()
	files, err := docFiles(root)
	if err != nil {
		t.Fatal(err)
	}
	var all [][]docBlock
	for _, f := range files {
		blocks, err := readBlocks(root, f)
		if err != nil {
			t.Fatal(err)
		}
		if bad := checkTags(blocks); len(bad) > 0 {
			t.Fatalf("untagged or badly tagged blocks (TestDocTags lists them): %s", bad[0])
		}
		all = append(all, blocks)
	}

	e := newEnvWith(t, options{tcp: true})
	work := docWorkdir(t, root, e)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); e.docPhone(ctx) }()
	defer func() { cancel(); wg.Wait() }()

	rewrite := strings.NewReplacer(
		docAPIAddr, strings.TrimPrefix(e.apiURL, "http://"),
		docMetricsAddr, strings.TrimSuffix(strings.TrimPrefix(e.metricsURL, "http://"), "/metrics"),
		docEmulatorAddr, strings.TrimPrefix(e.emuURL, "http://"),
	)
	ran := 0
	for i, blocks := range all {
		sh := script(blocks, rewrite)
		if !strings.Contains(sh, "__doc_block=") {
			continue
		}
		ran++
		rctx, rcancel := context.WithTimeout(ctx, 3*time.Minute)
		cmd := exec.CommandContext(rctx, "bash", "-c", sh)
		cmd.Dir = work
		cmd.Env = append(os.Environ(), "HOME="+work)
		out, err := cmd.CombinedOutput()
		rcancel()
		if err != nil {
			t.Errorf("%s: %v\n%s", files[i], err, out)
		} else {
			t.Logf("%s:\n%s", files[i], out)
		}
	}
	if ran == 0 {
		t.Fatal("no run blocks found")
	}
}

// docWorkdir makes the directory the blocks run in.
func docWorkdir(t *testing.T, root string, e *env) string {
	t.Helper()
	work := t.TempDir()
	links := map[string]string{
		"bin":      binDir,
		"scripts":  filepath.Join(root, "scripts"),
		"examples": filepath.Join(root, "examples"),
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(work, name)); err != nil {
			t.Fatal(err)
		}
	}
	// The CLI's config.toml: the supervisor's, with the address the kernel
	// gave its API in place of port 0.
	cfg, err := os.ReadFile(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	const anyPort = "[api]\nlisten = \"127.0.0.1:0\""
	if !bytes.Contains(cfg, []byte(anyPort)) {
		t.Fatalf("the harness's config has no %q", anyPort)
	}
	cfg = bytes.Replace(cfg, []byte(anyPort), []byte(fmt.Sprintf("[api]\nlisten = %q", strings.TrimPrefix(e.apiURL, "http://"))), 1)
	if err := os.WriteFile(filepath.Join(work, "config.toml"), cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	// The file the media examples upload: a PDF's magic and a few bytes.
	if err := os.WriteFile(filepath.Join(work, "factura.pdf"), []byte("%PDF-1.4\n% wa-sidecar doc test\n%%EOF\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return work
}

// docPhone scans, with an emulated phone, every QR the supervisor offers,
// once each, until ctx ends: what the reader does with their phone.
func (e *env) docPhone(ctx context.Context) {
	scanned := map[string]bool{}
	next := 0
	phones := map[string]string{}
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		orgs, err := e.api.List(cctx)
		cancel()
		if err != nil {
			continue
		}
		for _, s := range orgs {
			if s.Status != state.QRRequired || s.QRCode == "" || scanned[s.QRCode] || docByPhoneNumber[s.OrganizationID] {
				continue
			}
			phone, ok := docPhones[s.OrganizationID]
			if !ok {
				if phone, ok = phones[s.OrganizationID]; !ok {
					next++
					phone = fmt.Sprintf("5730055500%02d", next)
					phones[s.OrganizationID] = phone
				}
			}
			body, _ := json.Marshal(map[string]string{"qr_code": s.QRCode, "phone": phone})
			resp, err := http.Post(e.emuURL+"/control/scan", "application/json", bytes.NewReader(body))
			if err != nil {
				continue
			}
			resp.Body.Close()
			if resp.StatusCode < 300 {
				scanned[s.QRCode] = true
			}
		}
	}
}

var (
	docLinkRe    = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	docHeadingRe = regexp.MustCompile(`^#{1,6} +(.*)$`)
)

// TestDocLinks checks that every relative link in README.md and docs/*.md
// names a file that exists and, for a Markdown file, a heading in it.
func TestDocLinks(t *testing.T) {
	root := repoRoot()
	files, err := docFiles(root)
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]map[string]bool{}
	anchorsOf := func(path string) map[string]bool {
		if a, ok := anchors[path]; ok {
			return a
		}
		a := map[string]bool{}
		if b, err := os.ReadFile(path); err == nil {
			for _, line := range outsideFences(string(b)) {
				if m := docHeadingRe.FindStringSubmatch(line); m != nil {
					a[slug(m[1])] = true
				}
			}
		}
		anchors[path] = a
		return a
	}
	checked := 0
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range outsideFences(string(b)) {
			for _, m := range docLinkRe.FindAllStringSubmatch(line, -1) {
				target := m[1]
				if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
					continue
				}
				checked++
				path, frag, _ := strings.Cut(target, "#")
				full := filepath.Join(root, f)
				if path != "" {
					full = filepath.Join(root, filepath.Dir(f), path)
				}
				if _, err := os.Stat(full); err != nil {
					t.Errorf("%s: link %q: %v", f, target, err)
					continue
				}
				if frag != "" && strings.HasSuffix(full, ".md") && !anchorsOf(full)[frag] {
					t.Errorf("%s: link %q: no heading with the anchor #%s in %s", f, target, frag, filepath.Base(full))
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no relative links found")
	}
}

// outsideFences returns a Markdown text's lines that are not in a code block.
func outsideFences(text string) []string {
	var out []string
	in := false
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(strings.TrimLeft(line, " "), "```") {
			in = !in
			continue
		}
		if !in {
			out = append(out, line)
		}
	}
	return out
}

// slug is GitHub's anchor of a heading: lower case, punctuation dropped,
// spaces as hyphens.
func slug(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r > 127:
			b.WriteRune(r)
		}
	}
	return b.String()
}
