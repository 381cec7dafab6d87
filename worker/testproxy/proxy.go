// Package testproxy runs loopback SOCKS5 and HTTP CONNECT proxies for tests:
// each requires the username and password it was started with (none when
// both are empty), counts the connections it carried, and carries them only
// to loopback addresses, so that a test can never reach the internet through
// it. A request for any other destination is refused and remembered, which
// shows where a client tried to go. Everything stops in the test's Cleanup.
package testproxy

import (
	"crypto/x509"
	"net"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Proxy is one running proxy.
type Proxy struct {
	// URL is scheme://user:pass@127.0.0.1:port, as a worker takes it.
	URL string
	// RootCAs trusts an https:// proxy's certificate; nil for the others.
	RootCAs *x509.CertPool

	user, pass string
	carried    atomic.Int64
	mu         sync.Mutex
	refused    []string
	conns      connSet
}

// Carried is how many connections the proxy has opened to a destination
// for an authenticated client.
func (p *Proxy) Carried() int64 { return p.carried.Load() }

// Refused lists the non-loopback hosts clients asked for, in order.
func (p *Proxy) Refused() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.refused)
}

// allowed tells whether host may be dialed, remembering it if not.
func (p *Proxy) allowed(host string) bool {
	if ip := net.ParseIP(host); host == "localhost" || ip != nil && ip.IsLoopback() {
		return true
	}
	p.mu.Lock()
	p.refused = append(p.refused, host)
	p.mu.Unlock()
	return false
}

// dialTimeout bounds a dial to a loopback destination, which answers at once
// unless the test's server is wedged.
const dialTimeout = 10 * time.Second

// dial opens a connection to a loopback destination and counts it.
func (p *Proxy) dial(addr string) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, dialTimeout)
	if err != nil {
		return nil, err
	}
	if !p.conns.add(c) {
		return nil, net.ErrClosed
	}
	p.carried.Add(1)
	return c, nil
}

func proxyURL(scheme, user, pass, host string) string {
	u := url.URL{Scheme: scheme, Host: host}
	if user != "" || pass != "" {
		u.User = url.UserPassword(user, pass)
	}
	return u.String()
}

// DeadURL is a proxy URL whose port nothing listens on.
func DeadURL(t testing.TB, scheme, user, pass string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testproxy: find a free port: %v", err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatalf("testproxy: close the port: %v", err)
	}
	return proxyURL(scheme, user, pass, addr)
}

// connSet holds every connection a proxy opened or accepted, so that
// Cleanup can end the tunnels still running.
type connSet struct {
	mu     sync.Mutex
	closed bool
	conns  []net.Conn
}

// add keeps c, or closes it and reports false once the set is closed.
func (s *connSet) add(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		c.Close()
		return false
	}
	s.conns = append(s.conns, c)
	return true
}

func (s *connSet) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for _, c := range s.conns {
		c.Close()
	}
	s.conns = nil
}
