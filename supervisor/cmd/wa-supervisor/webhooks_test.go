package main

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wa-sidecar/wa-sidecar/shared/config"
	"github.com/wa-sidecar/wa-sidecar/supervisor/metrics"
	"github.com/wa-sidecar/wa-sidecar/supervisor/store"
)

// A webhook secret file that its group or others can read is used, with a
// warning naming it; one only its owner reads gets none. The secret is the
// file's content with surrounding white space trimmed (a trailing newline
// from echo or an editor is not part of it).
func TestLooseSecretFileWarns(t *testing.T) {
	for _, c := range []struct {
		mode os.FileMode
		warn bool
	}{{0o600, false}, {0o640, true}, {0o644, true}, {0o604, true}} {
		dir := t.TempDir()
		path := filepath.Join(dir, "webhook.secret")
		if err := os.WriteFile(path, []byte("  0123456789abcdef0123\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, c.mode); err != nil {
			t.Fatal(err)
		}
		st, err := store.Open(filepath.Join(dir, "state.db"))
		if err != nil {
			t.Fatal(err)
		}
		var logs bytes.Buffer
		cfg := config.Default()
		cfg.Webhook.URL, cfg.Webhook.SecretFile = "http://127.0.0.1:9/hook", path
		d, err := newDispatcher(cfg, st, metrics.New(prometheus.NewRegistry(), 1), slog.New(slog.NewTextHandler(&logs, nil)))
		st.Close()
		if err != nil || d == nil {
			t.Fatalf("mode %04o: %v", c.mode, err)
		}
		warned := strings.Contains(logs.String(), "level=WARN") && strings.Contains(logs.String(), path)
		if warned != c.warn {
			t.Fatalf("mode %04o: warned %v, want %v; log:\n%s", c.mode, warned, c.warn, logs.String())
		}
		if secret, _ := cfg.WebhookSecret(); string(secret) != "0123456789abcdef0123" {
			t.Fatalf("secret %q: the file's surrounding white space is not trimmed", secret)
		}
	}
}
