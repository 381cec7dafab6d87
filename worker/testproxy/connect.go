package testproxy

import (
	"crypto/x509"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// StartHTTPConnect runs an HTTP proxy on 127.0.0.1 that opens CONNECT
// tunnels, requiring Proxy-Authorization: Basic for user and pass (none
// when both are empty).
func StartHTTPConnect(t testing.TB, user, pass string) *Proxy {
	t.Helper()
	return startConnect(t, user, pass, false)
}

// StartHTTPSConnect is StartHTTPConnect with TLS between client and proxy;
// the proxy's certificate is trusted by the returned Proxy's RootCAs.
func StartHTTPSConnect(t testing.TB, user, pass string) *Proxy {
	t.Helper()
	return startConnect(t, user, pass, true)
}

func startConnect(t testing.TB, user, pass string, withTLS bool) *Proxy {
	p := &Proxy{user: user, pass: pass}
	var tunnels sync.WaitGroup
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tunnels.Add(1)
		defer tunnels.Done()
		p.serveConnect(w, r)
	}))
	scheme := "http"
	if withTLS {
		srv.StartTLS()
		scheme = "https"
		p.RootCAs = x509.NewCertPool()
		p.RootCAs.AddCert(srv.Certificate())
	} else {
		srv.Start()
	}
	p.URL = proxyURL(scheme, user, pass, srv.Listener.Addr().String())
	t.Cleanup(func() {
		// Close does not wait for hijacked connections: the tunnels are
		// closed and waited for here.
		srv.Close()
		p.conns.closeAll()
		tunnels.Wait()
	})
	return p
}

func (p *Proxy) serveConnect(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodConnect {
		http.Error(w, "this proxy only opens CONNECT tunnels", http.StatusMethodNotAllowed)
		return
	}
	if (p.user != "" || p.pass != "") && !p.authorized(r.Header.Get("Proxy-Authorization")) {
		w.Header().Set("Proxy-Authenticate", `Basic realm="testproxy"`)
		http.Error(w, "proxy credentials required", http.StatusProxyAuthRequired)
		return
	}
	host, _, err := net.SplitHostPort(r.Host)
	if err != nil {
		http.Error(w, "CONNECT needs host:port", http.StatusBadRequest)
		return
	}
	if !p.allowed(host) {
		http.Error(w, "testproxy carries connections to loopback only", http.StatusForbidden)
		return
	}
	target, err := p.dial(r.Host)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	client, buf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		target.Close()
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if !p.conns.add(client) {
		return
	}
	if _, err := io.WriteString(client, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		client.Close()
		target.Close()
		return
	}
	pipe(client, buf.Reader, target)
}

func (p *Proxy) authorized(header string) bool {
	encoded, ok := strings.CutPrefix(header, "Basic ")
	if !ok {
		return false
	}
	raw, err := base64.StdEncoding.DecodeString(encoded)
	return err == nil && string(raw) == p.user+":"+p.pass
}

// pipe copies both ways until either side ends, then closes both. The
// client's bytes come through its reader, which may hold some already.
func pipe(client net.Conn, fromClient io.Reader, target net.Conn) {
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(target, fromClient); done <- struct{}{} }()
	go func() { _, _ = io.Copy(client, target); done <- struct{}{} }()
	<-done
	client.Close()
	target.Close()
	<-done
}
