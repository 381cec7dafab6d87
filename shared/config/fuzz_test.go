package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Whatever the file holds, Load returns a valid config or one error line
// (a TOML parse error may quote a few lines); it never panics.
func FuzzLoad(f *testing.F) {
	for _, s := range []string{
		"", "state_dir = \"/x\"\n", "[workers]\nmax_live = 0\n", "[api]\nallowed_origins = [\"https://a\"]\n",
		"[[org]]\nid = \"2\"\n[[org]]\nid = \"2\"\n", "[workers]\nstart_jitter = [\"1s\"]\n", "x = [[[\n",
	} {
		f.Add(s)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, body string) {
		p := filepath.Join(dir, "config.toml")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := Load(p)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "config "+p) {
				t.Fatalf("error does not name the file: %q", err)
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("Load accepted a config that does not validate: %v", err)
		}
	})
}
