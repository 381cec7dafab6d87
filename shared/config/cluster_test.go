package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestRepoConfigClusterIsTheDefault(t *testing.T) {
	cfg, err := Load("../../config.toml")
	if err != nil {
		t.Fatal(err)
	}
	if def := Default(); !reflect.DeepEqual(cfg.Cluster, def.Cluster) || cfg.Cluster.Enabled() {
		t.Errorf("config.toml [cluster] drifted from Default() or is on: %+v", cfg.Cluster)
	}
}

func TestClusterSection(t *testing.T) {
	key := filepath.Join(t.TempDir(), "cluster.key")
	if err := os.WriteFile(key, []byte("0123456789abcdef0123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(write(t, `
[cluster]
etcd = ["http://127.0.0.1:2379"]
node = "vps-2"
advertise = "http://10.0.0.2:8089"
capacity = 40
key_file = "`+key+`"
lease_ttl = "5s"
`))
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Cluster
	if !c.Enabled() || c.Node != "vps-2" || c.Capacity != 40 || c.LeaseTTL.Duration != 5*time.Second {
		t.Errorf("unexpected %+v", c)
	}
	if k, err := c.Key(); err != nil || k != "0123456789abcdef0123" {
		t.Errorf("key %q, %v", k, err)
	}
	if n, err := c.NodeName(); err != nil || n != "vps-2" {
		t.Errorf("node %q, %v", n, err)
	}
}

// The default capacity was a fixed 25 beside max_live's 5: a node took 25
// organizations and ran 5, and the other 20 waited queued while other
// nodes had room.
func TestClusterCapacityFollowsMaxLive(t *testing.T) {
	on := "[cluster]\netcd = [\"http://127.0.0.1:2379\"]\nkey_file = \"k\"\n"
	cases := []struct {
		name, body string
		want       int
	}{
		{"unset", on, 5},
		{"unset, max_live raised", "[workers]\nmax_live = 8\nmax_live_per_egress = 8\n" + on, 8},
		{"set below", on + "capacity = 3\n", 3},
		{"set above", on + "capacity = 9\n", 9},
		{"zero takes none", on + "capacity = 0\n", 0},
	}
	for _, c := range cases {
		cfg, err := Load(write(t, c.body))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if cfg.Cluster.Capacity != c.want {
			t.Errorf("%s: capacity %d, want %d", c.name, cfg.Cluster.Capacity, c.want)
		}
	}
}

func TestClusterErrorsNameTheKey(t *testing.T) {
	on := "[cluster]\netcd = [\"http://127.0.0.1:2379\"]\nkey_file = \"k\"\n"
	cases := map[string]struct{ body, want string }{
		"etcd url":   {"[cluster]\netcd = [\"127.0.0.1:2379\"]\nkey_file = \"k\"\n", "cluster.etcd[0]"},
		"no key":     {"[cluster]\netcd = [\"http://127.0.0.1:2379\"]\n", "cluster.key_file"},
		"node name":  {on + "node = \"a/b\"\n", "cluster.node"},
		"advertise":  {on + "advertise = \"10.0.0.2:8089\"\n", "cluster.advertise"},
		"capacity":   {on + "capacity = -1\n", "cluster.capacity"},
		"lease":      {on + "lease_ttl = \"500ms\"\n", "cluster.lease_ttl"},
		"static org": {on + "[[org]]\nid = \"2\"\n", "in cluster mode register organizations"},
		"unknown":    {"[cluster]\nnodes = 3\n", "cluster.nodes"},
	}
	for name, c := range cases {
		_, err := Load(write(t, c.body))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v does not name %q", name, err, c.want)
		}
	}
	short := filepath.Join(t.TempDir(), "short.key")
	if err := os.WriteFile(short, []byte("abc\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := Cluster{KeyFile: short}
	if _, err := c.Key(); err == nil || !strings.Contains(err.Error(), "at least 16") {
		t.Errorf("short key: %v", err)
	}
}
