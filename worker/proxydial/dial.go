// Package proxydial opens a worker's TCP connections through its
// organization's proxy (socks5, or an HTTP(S) CONNECT tunnel), and never
// through a proxy from the environment: the emulator link dials with it, and
// a start against WhatsApp checks the proxy with it before connecting.
package proxydial

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"

	"golang.org/x/net/proxy"
)

// Func opens a TCP connection to the address it was made for.
type Func func(ctx context.Context) (net.Conn, error)

// proxyDialTimeout matches whatsmeow's SetProxyAddress, so that a dead proxy
// fails a start as fast in emulator mode as against WhatsApp.
const proxyDialTimeout = 30 * time.Second

// To returns how to reach addr: directly when proxyURL is empty,
// otherwise only through the proxy, never through one from the environment.
// roots verifies an https:// proxy's certificate; nil means the system's.
func To(addr, proxyURL string, roots *x509.CertPool) (Func, error) {
	if proxyURL == "" {
		return Direct(addr), nil
	}
	u, err := url.Parse(proxyURL)
	if err != nil {
		// url.Error quotes the URL, credentials included.
		return nil, errors.New("proxy URL does not parse")
	}
	forward := &net.Dialer{Timeout: proxyDialTimeout, KeepAlive: 30 * time.Second}
	switch u.Scheme {
	case "socks5":
		d, err := proxy.FromURL(u, forward)
		if err != nil {
			return nil, fmt.Errorf("socks5 dialer: %w", err)
		}
		cd, ok := d.(proxy.ContextDialer)
		if !ok {
			return nil, fmt.Errorf("socks5 dialer %T cannot be cancelled", d)
		}
		return func(ctx context.Context) (net.Conn, error) { return cd.DialContext(ctx, "tcp", addr) }, nil
	case "http", "https":
		return func(ctx context.Context) (net.Conn, error) { return dialConnect(ctx, forward, u, addr, roots) }, nil
	default:
		return nil, fmt.Errorf("proxy scheme %q is not supported", u.Scheme)
	}
}

// Direct dials addr itself.
func Direct(addr string) Func {
	return func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}
}

// dialConnect opens a tunnel to addr with HTTP CONNECT. net/http's own proxy
// support cannot serve here: it would CONNECT to web.whatsapp.com:443 and
// speak TLS, where the emulator expects plain HTTP on its own address.
func dialConnect(ctx context.Context, forward *net.Dialer, px *url.URL, addr string, roots *x509.CertPool) (net.Conn, error) {
	conn, err := forward.DialContext(ctx, "tcp", px.Host)
	if err != nil {
		return nil, err
	}
	if px.Scheme == "https" {
		tc := tls.Client(conn, &tls.Config{ServerName: px.Hostname(), RootCAs: roots, MinVersion: tls.VersionTLS12})
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, fmt.Errorf("TLS handshake with the proxy: %w", err)
		}
		conn = tc
	}
	tunnel, err := connectOver(ctx, conn, px, addr)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return tunnel, nil
}

// connectOver sends CONNECT on conn and reads the answer, both bounded by
// ctx: a proxy that accepts but never answers must not hang the start.
func connectOver(ctx context.Context, conn net.Conn, px *url.URL, addr string) (net.Conn, error) {
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	req := &http.Request{Method: http.MethodConnect, URL: &url.URL{Opaque: addr}, Host: addr, Header: http.Header{}}
	if px.User != nil {
		pass, _ := px.User.Password()
		req.Header.Set("Proxy-Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(px.User.Username()+":"+pass)))
	}
	if err := req.Write(conn); err != nil {
		return nil, fmt.Errorf("send CONNECT %s: %w", addr, ctxOr(ctx, err))
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return nil, fmt.Errorf("read the answer to CONNECT %s: %w", addr, ctxOr(ctx, err))
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("proxy refused CONNECT %s: %s", addr, resp.Status)
	}
	if !stop() {
		// ctx ended just as the tunnel opened; the deadline is already set.
		return nil, ctx.Err()
	}
	// The reader may already hold the first bytes from the far end.
	return &bufferedConn{Conn: conn, r: br}, nil
}

// ctxOr prefers ctx's error to the deadline error its cancellation caused.
func ctxOr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
