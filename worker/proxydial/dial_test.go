package proxydial

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/worker/testproxy"
)

// TestDialThroughProxy sends a request for a wss:// URL, as whatsmeow's
// websocket upgrade is, to a plain HTTP server through each kind of proxy.
func TestDialThroughProxy(t *testing.T) {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.URL.Path)
	}))
	t.Cleanup(target.Close)
	addr := target.Listener.Addr().String()
	for name, start := range map[string]func(testing.TB, string, string) *testproxy.Proxy{
		"socks5": testproxy.StartSOCKS5, "http": testproxy.StartHTTPConnect, "https": testproxy.StartHTTPSConnect,
	} {
		t.Run(name, func(t *testing.T) {
			p := start(t, "alice", "s3cret")
			get := func(proxyURL string) error {
				dial, err := To(addr, proxyURL, p.RootCAs)
				if err != nil {
					return err
				}
				// As the emulator link uses it: TLS is the emulator's pretence,
				// so the "TLS" dial is the plain one too.
				d := func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx) }
				hc := &http.Client{Transport: &http.Transport{DialContext: d, DialTLSContext: d}}
				defer hc.CloseIdleConnections()
				resp, err := hc.Get("https://web.whatsapp.com/ws/chat")
				if err != nil {
					return err
				}
				defer resp.Body.Close()
				body, err := io.ReadAll(resp.Body)
				if err == nil && string(body) != "/ws/chat" {
					t.Errorf("the target answered %q", body)
				}
				return err
			}
			if err := get(p.URL); err != nil {
				t.Fatalf("through the proxy: %v", err)
			}
			if p.Carried() != 1 {
				t.Errorf("the proxy carried %d connections, want 1", p.Carried())
			}
			if err := get(strings.Replace(p.URL, "s3cret", "wrong", 1)); err == nil {
				t.Error("a wrong password got through")
			}
		})
	}
}

// TestConnectBoundedByContext: a proxy that accepts and never answers the
// CONNECT must not hold a start past its context.
func TestConnectBoundedByContext(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	silent := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			silent <- c
		}
		close(silent)
	}()
	t.Cleanup(func() {
		ln.Close()
		for c := range silent {
			c.Close()
		}
	})
	dial, err := To("127.0.0.1:1", "http://"+ln.Addr().String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		c, err := dial(ctx)
		if c != nil {
			c.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("dial = %v, want the context's deadline", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("CONNECT to a silent proxy outlived its context")
	}
}
