package testproxy

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// The proxies are checked against net/http's own proxy client, which speaks
// SOCKS5 with RFC 1929 passwords and CONNECT with Basic credentials: a test
// that trusts these proxies trusts a standard client's view of them.
func TestProxiesAgainstNetHTTP(t *testing.T) {
	target := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "through")
	}))
	t.Cleanup(target.Close)
	for name, start := range map[string]func(testing.TB, string, string) *Proxy{
		"socks5": StartSOCKS5, "http": StartHTTPConnect, "https": StartHTTPSConnect,
	} {
		t.Run(name, func(t *testing.T) {
			p := start(t, "alice", "s3cret")
			get := func(proxyURL, targetURL string) error {
				roots := x509.NewCertPool()
				roots.AddCert(target.Certificate()) // the https proxy's is the same
				tr := &http.Transport{Proxy: http.ProxyURL(mustParse(t, proxyURL)), TLSClientConfig: &tls.Config{RootCAs: roots}}
				defer tr.CloseIdleConnections()
				resp, err := (&http.Client{Transport: tr}).Get(targetURL)
				if err != nil {
					return err
				}
				defer resp.Body.Close()
				body, err := io.ReadAll(resp.Body)
				if err == nil && string(body) != "through" {
					t.Errorf("body %q through %s", body, name)
				}
				return err
			}

			if err := get(p.URL, target.URL); err != nil {
				t.Fatalf("GET through the proxy: %v", err)
			}
			if p.Carried() != 1 {
				t.Errorf("carried %d connections, want 1", p.Carried())
			}
			if err := get(strings.Replace(p.URL, "s3cret", "wrong", 1), target.URL); err == nil {
				t.Error("wrong password accepted")
			}
			if err := get(p.URL, "https://web.whatsapp.invalid/"); err == nil {
				t.Error("carried a connection off loopback")
			}
			if got := p.Refused(); !slices.Equal(got, []string{"web.whatsapp.invalid"}) {
				t.Errorf("Refused() = %v, want the one non-loopback host", got)
			}
			if p.Carried() != 1 {
				t.Errorf("carried %d connections after the refusals, want still 1", p.Carried())
			}
		})
	}
}

func TestDeadURL(t *testing.T) {
	u := mustParse(t, DeadURL(t, "socks5", "alice", "s3cret"))
	tr := &http.Transport{Proxy: http.ProxyURL(u)}
	defer tr.CloseIdleConnections()
	if _, err := (&http.Client{Transport: tr}).Get("http://127.0.0.1:1/"); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("GET through a dead proxy: %v, want connection refused", err)
	}
}

func mustParse(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
