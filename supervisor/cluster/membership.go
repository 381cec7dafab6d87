package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Run keeps this node's membership under a lease and probes etcd until
// ctx ends; then it revokes the lease so the others see it leave at once.
func (c *Cluster) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.probeLoop(ctx)
	}()
	c.membershipLoop(ctx)
	wg.Wait()
	return nil
}

func (c *Cluster) membershipLoop(ctx context.Context) {
	val, _ := json.Marshal(Member{Node: c.Self(), Advertise: c.o.Advertise, Capacity: c.o.Capacity})
	var prev clientv3.LeaseID
	for ctx.Err() == nil {
		lease, err := c.join(ctx, string(val), prev)
		if err != nil {
			c.log.Warn("cluster: cannot join; retrying", "err", err)
			sleep(ctx, probeGap)
			continue
		}
		c.log.Info("cluster: joined", "advertise", c.o.Advertise)
		ka, err := c.cli.KeepAlive(ctx, lease)
		if err == nil {
			// The channel closes when ctx ends or the lease cannot be
			// renewed within its TTL: then join again.
			for range ka {
			}
		}
		if ctx.Err() != nil {
			rctx, cancel := context.WithTimeout(context.Background(), opTimeout)
			_, _ = c.cli.Revoke(rctx, lease)
			cancel()
			return
		}
		prev = lease
		c.log.Warn("cluster: lease lost; joining again")
	}
}

// join registers this node under a new lease; prev, this node's lease
// before an outage, is revoked first so that its key does not stand in
// the way until it expires.
func (c *Cluster) join(ctx context.Context, val string, prev clientv3.LeaseID) (clientv3.LeaseID, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	if prev != 0 {
		_, _ = c.cli.Revoke(ctx, prev)
	}
	ttl := int64(c.o.LeaseTTL / time.Second)
	lease, err := c.cli.Grant(ctx, ttl)
	if err != nil {
		return 0, unavailable("grant a lease", err)
	}
	// Only if no live node holds the name: two supervisors under one name
	// would each take the other's organizations for their own. A node
	// restarted after a crash waits for its old lease to expire.
	key := nodesKey + c.Self()
	resp, err := c.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, val, clientv3.WithLease(lease.ID))).Commit()
	if err != nil {
		return 0, unavailable("register the node", err)
	}
	if !resp.Succeeded {
		_, _ = c.cli.Revoke(ctx, lease.ID)
		return 0, fmt.Errorf("another live node is registered as %q (or this node's previous lease has not expired yet, at most cluster.lease_ttl)", c.Self())
	}
	return lease.ID, nil
}

// probeLoop refreshes the members and the etcd_up, members and owned
// gauges once a second.
func (c *Cluster) probeLoop(ctx context.Context) {
	for ctx.Err() == nil {
		c.probe(ctx)
		sleep(ctx, probeGap)
	}
}

func (c *Cluster) probe(ctx context.Context) {
	c.mu.Lock()
	swaps := c.swaps
	c.mu.Unlock()
	pctx, cancel := context.WithTimeout(ctx, opTimeout)
	resp, err := c.cli.Get(pctx, nodesKey, clientv3.WithPrefix())
	cancel()
	var owners map[string]string
	if err == nil {
		owners, err = c.Ownership(ctx)
	}
	c.mu.Lock()
	was, first := c.up, !c.probed
	c.up, c.probed = err == nil, true
	if err == nil {
		for n, m := range c.members {
			m.Live = false
			c.members[n] = m
		}
		for _, kv := range resp.Kvs {
			var m Member
			if json.Unmarshal(kv.Value, &m) != nil {
				continue
			}
			m.Node, m.Live = strings.TrimPrefix(string(kv.Key), nodesKey), true
			c.members[m.Node] = m
		}
		live := 0
		for _, m := range c.members {
			if m.Live {
				live++
			}
		}
		c.metrics.members.Set(float64(live))
	}
	c.mu.Unlock()
	if err != nil {
		c.metrics.etcdUp.Set(0)
		if (was || first) && ctx.Err() == nil {
			c.log.Warn("cluster: etcd unreachable; running fail static", "err", err)
		}
		return
	}
	c.metrics.etcdUp.Set(1)
	if !was {
		c.log.Info("cluster: etcd reachable")
	}
	// etcd is the truth: what this node owns there is what it may run
	// through an outage (a node placing an org on another does not tell
	// the owner; this does, within a probe).
	var mine []string
	c.mu.Lock()
	stale := c.swaps != swaps
	for org, owner := range owners {
		if owner == c.Self() && !c.leaving[org] {
			mine = append(mine, org)
		}
	}
	// Under c.mu, so that no swap begins between the check and the write.
	var err2 error
	if !stale {
		err2 = c.owned.replace(mine)
	}
	c.mu.Unlock()
	if stale {
		return
	}
	if err2 != nil {
		c.log.Error("cluster: could not save the owned organizations", "err", err2)
	}
	c.metrics.owned.Set(float64(len(mine)))
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
