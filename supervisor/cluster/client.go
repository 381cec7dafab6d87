package cluster

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// Client is the HTTP client for node-to-node calls: short connect
// timeout, so a dead owner is told apart quickly, and no overall timeout,
// which each call sets by its context (a move streams an auth directory).
func (c *Cluster) Client() *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 3 * time.Second}).DialContext,
		ResponseHeaderTimeout: 55 * time.Second, // the API answers within its 60 s WriteTimeout
		MaxIdleConnsPerHost:   8,
		IdleConnTimeout:       90 * time.Second,
	}}
}

// Request calls path on node with the cluster key; the caller closes the
// answer's body.
func (c *Cluster) Request(ctx context.Context, method, node, path string, body io.Reader) (*http.Response, error) {
	base, live := c.NodeURL(node)
	if !live || base == "" {
		return nil, &UnreachableError{Node: node, Err: fmt.Errorf("it holds no lease in etcd (down or cut off)")}
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set(KeyHeader, c.Key())
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return nil, &UnreachableError{Node: node, Err: err}
	}
	return resp, nil
}

func (c *Cluster) httpClient() *http.Client {
	c.clientOnce.Do(func() { c.http = c.Client() })
	return c.http
}
