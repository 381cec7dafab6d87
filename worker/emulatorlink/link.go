// Package emulatorlink is all a worker carries of the WhatsApp emulator: the
// emulator's certificate root and a dialer that sends whatsmeow's
// connections to it, through the organization's proxy if it has one. The
// emulator server itself (worker/emulator) is never linked into wa-worker; a
// worker uses this link only when the supervisor's config names an
// emulator, and logs a loud warning when it does.
package emulatorlink

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"

	"go.mau.fi/whatsmeow"

	"github.com/wa-sidecar/wa-sidecar/worker/proxydial"
)

// HTTPClient returns a client that sends every request, including the
// wss://web.whatsapp.com websocket upgrade, as plain HTTP over TCP to addr
// ("127.0.0.1:7000"), directly.
func HTTPClient(addr string) *http.Client {
	return httpClient(proxydial.Direct(addr))
}

// httpClient builds its Transport new rather than cloning
// http.DefaultTransport so that no proxy from the environment applies: a
// proxy is the organization's, in dial, or none.
func httpClient(dial proxydial.Func) *http.Client {
	anyAddr := func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx) }
	return &http.Client{Transport: &http.Transport{
		DialContext:         anyAddr,
		DialTLSContext:      anyAddr,
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConns:        4,
		IdleConnTimeout:     30 * time.Second,
	}}
}

// Configure points an unchanged whatsmeow client at the emulator at baseURL
// ("http://127.0.0.1:7000"): it trusts the emulator's certificate root
// (fetched from /control/root-key) and routes the websocket to the
// emulator's address, through proxyURL when it is not empty (socks5://,
// http:// or https://, as whatsmeow's SetProxyAddress takes). It replaces
// the websocket clients, and with them any proxy SetProxyAddress set there,
// so it must come after SetProxyAddress. The root is process-global in
// whatsmeow (WACertPubKey), so one process can talk to one emulator root at
// a time.
func Configure(cli *whatsmeow.Client, baseURL, proxyURL string) error {
	u, err := url.Parse(baseURL)
	if err != nil || u.Host == "" {
		return fmt.Errorf("emulator URL %q is not an absolute URL", baseURL)
	}
	dial, err := proxydial.To(u.Host, proxyURL, nil)
	if err != nil {
		return err
	}
	hc := httpClient(dial)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.JoinPath("/control/root-key").String(), nil)
	if err != nil {
		return fmt.Errorf("build root key request: %w", err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("fetch emulator root key: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetch emulator root key: %s", resp.Status)
	}
	var body struct {
		PublicKey string `json:"public_key"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return fmt.Errorf("decode emulator root key: %w", err)
	}
	key, err := base64.StdEncoding.DecodeString(body.PublicKey)
	if err != nil || len(key) != 32 {
		return fmt.Errorf("emulator root key %q is not 32 bytes of base64", body.PublicKey)
	}
	// Only write when it differs: clients of this process may be handshaking
	// concurrently and read the variable.
	if [32]byte(key) != whatsmeow.WACertPubKey {
		whatsmeow.WACertPubKey = [32]byte(key)
	}
	cli.SetPreLoginHTTPClient(hc)
	cli.SetWebsocketHTTPClient(hc)
	// Uploads and downloads go to the emulator's address too (its /mms/
	// routes), plain like the websocket: media_conn names the emulator's
	// own HTTPS media host, whose port a sandboxed worker may not reach.
	cli.SetMediaHTTPClient(hc)
	return nil
}
