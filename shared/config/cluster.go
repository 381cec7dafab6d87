package config

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"
)

// Cluster is the [cluster] section: empty Etcd means one host, and then
// nothing else in it matters.
type Cluster struct {
	// Etcd are the etcd endpoints ("http://10.0.0.5:2379").
	Etcd []string `toml:"etcd"`
	// Node is this supervisor's stable, unique name; empty: the host name.
	Node string `toml:"node"`
	// Advertise is this node's API URL as the other nodes reach it; empty:
	// the API's own TCP address (enough on one machine, not across hosts).
	Advertise string `toml:"advertise"`
	// Capacity is how many organizations this node takes; it weighs the
	// placement and a full node takes none. Unset, it is workers.max_live:
	// an organization placed past max_live would wait queued on this node
	// while another node has room.
	Capacity int `toml:"capacity"`
	// KeyFile holds the cluster's shared key for node-to-node calls.
	KeyFile  string   `toml:"key_file"`
	LeaseTTL Duration `toml:"lease_ttl"`
}

// Enabled reports whether the supervisor runs as one node of a cluster.
func (c *Cluster) Enabled() bool { return len(c.Etcd) > 0 }

// MinClusterKey is the shortest cluster key accepted: it is all that
// stands between the network and every organization's routes.
const MinClusterKey = 16

func defaultCluster() Cluster {
	return Cluster{Etcd: []string{}, Capacity: maxLive, LeaseTTL: Duration{10 * time.Second}}
}

func (c *Cluster) validate() error {
	if !c.Enabled() {
		return nil
	}
	for i, e := range c.Etcd {
		if err := requiredURL(e); err != nil {
			return fmt.Errorf("cluster.etcd[%d]: %w", i, err)
		}
	}
	if c.Node != "" {
		if err := nodeName(c.Node); err != nil {
			return fmt.Errorf("cluster.node: %w", err)
		}
	}
	if c.Advertise != "" {
		u, err := url.Parse(c.Advertise)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return fmt.Errorf("cluster.advertise: %q is not a base URL such as http://10.0.0.2:8089", c.Advertise)
		}
	}
	if c.Capacity < 0 {
		return fmt.Errorf("cluster.capacity: %d is negative; 0 takes no new organizations", c.Capacity)
	}
	if c.KeyFile == "" {
		return errors.New("cluster.key_file: a cluster needs a shared key for node-to-node calls (e.g. openssl rand -hex 32 > cluster.key)")
	}
	if c.LeaseTTL.Duration < 2*time.Second {
		return fmt.Errorf("cluster.lease_ttl: %s is below 2s, which etcd does not grant", c.LeaseTTL.Duration)
	}
	return nil
}

// nodeName keeps node names usable as etcd key segments and metric labels.
func nodeName(n string) error {
	if len(n) > 63 {
		return fmt.Errorf("%q is longer than 63 characters", n)
	}
	for _, r := range n {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return fmt.Errorf("%q may hold only letters, digits, '-', '_' and '.'", n)
		}
	}
	return nil
}

// NodeName is cluster.node, or the host name when it is empty.
func (c *Cluster) NodeName() (string, error) {
	if c.Node != "" {
		return c.Node, nil
	}
	h, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("cluster.node is empty and the host name is unknown: %w", err)
	}
	if err := nodeName(h); err != nil {
		return "", fmt.Errorf("cluster.node is empty and the host name cannot be a node name: %w", err)
	}
	return h, nil
}

// Key reads the cluster key from cluster.key_file, white space trimmed.
func (c *Cluster) Key() (string, error) {
	b, err := os.ReadFile(c.KeyFile)
	if err != nil {
		return "", fmt.Errorf("cluster.key_file: %w", err)
	}
	k := strings.TrimSpace(string(b))
	if len(k) < MinClusterKey {
		return "", fmt.Errorf("cluster.key_file: %s holds %d characters; use at least %d (e.g. openssl rand -hex 32)", c.KeyFile, len(k), MinClusterKey)
	}
	return k, nil
}
