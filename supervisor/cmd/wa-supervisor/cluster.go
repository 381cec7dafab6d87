package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wa-sidecar/wa-sidecar/shared/config"
	"github.com/wa-sidecar/wa-sidecar/supervisor/cluster"
	"github.com/wa-sidecar/wa-sidecar/supervisor/lifecycle"
)

// joinCluster makes this supervisor a node of the cluster that
// cfg.Cluster names; nil, nil on one host.
func joinCluster(cfg *config.Config, apiLn net.Listener, reg prometheus.Registerer, log *slog.Logger) (*cluster.Cluster, error) {
	if !cfg.Cluster.Enabled() {
		return nil, nil
	}
	node, err := cfg.Cluster.NodeName()
	if err != nil {
		return nil, err
	}
	key, err := cfg.Cluster.Key()
	if err != nil {
		return nil, err
	}
	advertise, err := advertiseURL(cfg.Cluster.Advertise, apiLn.Addr())
	if err != nil {
		return nil, err
	}
	if cfg.Cluster.Capacity > cfg.Workers.MaxLive {
		log.Warn("cluster.capacity is above workers.max_live: organizations placed here past max_live wait queued while other nodes have room",
			"capacity", cfg.Cluster.Capacity, "max_live", cfg.Workers.MaxLive)
	}
	return cluster.New(cluster.Options{
		Endpoints: cfg.Cluster.Etcd, Node: node, Advertise: advertise, Capacity: cfg.Cluster.Capacity,
		Key: key, LeaseTTL: cfg.Cluster.LeaseTTL.Duration, StateDir: filepath.Join(cfg.StateDir, "cluster"),
		Registerer: reg, Log: log.With("node", node),
	})
}

// advertiseURL is cluster.advertise, or the API's own address when it
// listens on one IP (enough when the nodes share a machine).
func advertiseURL(configured string, addr net.Addr) (string, error) {
	if configured != "" {
		return strings.TrimSuffix(configured, "/"), nil
	}
	tcp, ok := addr.(*net.TCPAddr)
	if !ok {
		return "", errors.New("cluster mode needs api.listen on TCP: the other nodes call this one there")
	}
	if tcp.IP.IsUnspecified() {
		return "", fmt.Errorf("cluster.advertise: api.listen %s listens on every address; set the URL the other nodes reach this one at", addr)
	}
	return "http://" + tcp.String(), nil
}

// releaseOrg gives up a purged organization's place in etcd. A failure is
// only logged: the next boot releases what this node owns but no longer
// stores (ownedRecords).
func releaseOrg(cl *cluster.Cluster, org string, log *slog.Logger) {
	if err := cl.Release(context.Background(), org); err != nil {
		log.Warn("cluster: could not release a deleted organization's place; the next boot does", "org", org, "err", err)
	}
}

// ownedRecords keeps, of the stored organizations, those this node may
// start at boot (cl.Restorable) and the deleted ones, whose holds must
// outlive them; on one host (cl nil) it keeps everything. It also
// releases what etcd says this node owns but it stores nothing of (a
// purge whose release a crash or an outage cut off).
func ownedRecords(ctx context.Context, cl *cluster.Cluster, recs []lifecycle.Record, log *slog.Logger) []lifecycle.Record {
	if cl == nil {
		return recs
	}
	var ids, stored []string
	for _, r := range recs {
		stored = append(stored, r.ID)
		if !r.Deleted {
			ids = append(ids, r.ID)
		}
	}
	keep := map[string]bool{}
	for _, id := range cl.Restorable(ctx, ids) {
		keep[id] = true
	}
	if err := cl.ReleaseUnstored(ctx, stored); err != nil {
		log.Warn("cluster: could not release the places of organizations purged before; the next boot tries again", "err", err)
	}
	out := make([]lifecycle.Record, 0, len(recs))
	for _, r := range recs {
		if r.Deleted || keep[r.ID] {
			out = append(out, r)
		}
	}
	return out
}
