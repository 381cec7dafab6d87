// Package emulatorlink is all a worker carries of the WhatsApp emulator: the
// emulator's certificate root and a dialer that sends whatsmeow's
// connections to it. The emulator server itself (worker/emulator) is never
// linked into wa-worker; a worker uses this link only when the supervisor's
// config names an emulator, and logs a loud warning when it does.
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
)

// HTTPClient returns a client that sends every request, including the
// wss://web.whatsapp.com websocket upgrade, as plain HTTP over TCP to addr
// ("127.0.0.1:7000"). The Transport is built new rather than cloned from
// http.DefaultTransport so that no proxy from the environment applies.
func HTTPClient(addr string) *http.Client {
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}
	return &http.Client{Transport: &http.Transport{
		DialContext:         dial,
		DialTLSContext:      dial,
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConns:        4,
		IdleConnTimeout:     30 * time.Second,
	}}
}

// Configure points an unchanged whatsmeow client at the emulator at baseURL
// ("http://127.0.0.1:7000"): it trusts the emulator's certificate root
// (fetched from /control/root-key) and routes the websocket through
// HTTPClient. The root is process-global in whatsmeow (WACertPubKey), so one
// process can talk to one emulator root at a time.
func Configure(cli *whatsmeow.Client, baseURL string) error {
	u, err := url.Parse(baseURL)
	if err != nil || u.Host == "" {
		return fmt.Errorf("emulator URL %q is not an absolute URL", baseURL)
	}
	hc := HTTPClient(u.Host)
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
	return nil
}
