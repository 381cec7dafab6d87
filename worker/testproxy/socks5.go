package testproxy

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"sync"
	"testing"

	socks5 "github.com/armon/go-socks5"
)

// StartSOCKS5 runs a SOCKS5 proxy on 127.0.0.1 requiring user and pass
// (RFC 1929), or no authentication when both are empty.
func StartSOCKS5(t testing.TB, user, pass string) *Proxy {
	t.Helper()
	p := &Proxy{user: user, pass: pass}
	conf := &socks5.Config{
		Resolver: loopbackResolver{p},
		Rules:    loopbackRules{p},
		Dial:     func(_ context.Context, _, addr string) (net.Conn, error) { return p.dial(addr) },
		// Its default logger writes to stdout, which test binaries own.
		Logger: log.New(io.Discard, "", 0),
	}
	if user != "" || pass != "" {
		conf.Credentials = socks5.StaticCredentials{user: pass}
	}
	srv, err := socks5.New(conf)
	if err != nil {
		t.Fatalf("testproxy: socks5 server: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testproxy: listen: %v", err)
	}
	p.URL = proxyURL("socks5", user, pass, ln.Addr().String())

	// Serve's own loop would leave the per-connection goroutines running
	// past the test; this one waits for them.
	var served sync.WaitGroup
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		for {
			c, err := ln.Accept()
			if err != nil {
				if !errors.Is(err, net.ErrClosed) {
					t.Errorf("testproxy: socks5 accept: %v", err)
				}
				return
			}
			if !p.conns.add(c) {
				continue
			}
			served.Add(1)
			go func() {
				defer served.Done()
				_ = srv.ServeConn(c) // failures are the client's to see
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-accepted
		p.conns.closeAll()
		served.Wait()
	})
	return p
}

// loopbackResolver resolves only "localhost": go-socks5 resolves a
// requested name before its rules run, and a test must not look up, let
// alone reach, web.whatsapp.com.
type loopbackResolver struct{ p *Proxy }

func (r loopbackResolver) Resolve(ctx context.Context, name string) (context.Context, net.IP, error) {
	if !r.p.allowed(name) {
		return ctx, nil, errors.New("testproxy carries connections to loopback only")
	}
	return ctx, net.IPv4(127, 0, 0, 1), nil
}

// loopbackRules refuses destinations given as non-loopback addresses.
type loopbackRules struct{ p *Proxy }

func (r loopbackRules) Allow(ctx context.Context, req *socks5.Request) (context.Context, bool) {
	if req.DestAddr.FQDN != "" {
		return ctx, true // already vetted by loopbackResolver
	}
	return ctx, r.p.allowed(req.DestAddr.IP.String())
}
