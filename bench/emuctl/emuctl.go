// Package emuctl is the bench's client of the emulator's control API (see
// README, "The emulator"): the phone scanning a QR code and the network
// delivering messages whose MAC is corrupted. The driver and the
// one-process program both pair through it.
package emuctl

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Client calls one emulator's control API. It is safe for concurrent use.
type Client struct {
	base string
	http *http.Client
}

// New returns a client for the emulator at baseURL ("http://127.0.0.1:7000").
func New(baseURL string) *Client {
	// Its own transport without a proxy: the emulator is on loopback, and
	// a proxy from the environment would only get in the way.
	return &Client{base: strings.TrimSuffix(baseURL, "/"), http: &http.Client{Transport: &http.Transport{Proxy: nil}}}
}

// Scan has phone scan the QR code a client or the status API shows; it
// returns once the emulator has paired the device, before the client
// reconnects as that device.
func (c *Client) Scan(ctx context.Context, qrCode, phone string) error {
	return c.post(ctx, "/control/scan", map[string]string{"qr_code": qrCode, "phone": phone})
}

// BadMAC sends count messages with a corrupted MAC to phone's linked device.
func (c *Client) BadMAC(ctx context.Context, phone string, count int) error {
	return c.post(ctx, "/control/devices/"+url.PathEscape(phone)+"/badmac", map[string]int{"count": count})
}

func (c *Client) post(ctx context.Context, path string, body any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("emulator %s: encode: %w", path, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("emulator %s: %w", path, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("emulator %s: %w", path, err)
	}
	defer resp.Body.Close()
	// Bounded: the answers are one small JSON object.
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("emulator %s: %s: %s", path, resp.Status, bytes.TrimSpace(raw))
	}
	return nil
}
