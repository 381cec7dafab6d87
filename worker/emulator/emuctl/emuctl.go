// Package emuctl is a client of the emulator's control API (see README,
// "The emulator"): the phone scanning a QR code, the network delivering
// messages whose MAC is corrupted, WhatsApp logging a device out, and what
// a phone's devices sent. make bench and make soak drive the emulator
// through it.
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
	"time"
)

// Delivery is one message a phone's device sent, as GET
// /control/devices/{phone}/sent lists it. The emulator keeps them in this
// type, so the client cannot drift from the server. It imports nothing of
// the emulator, which keeps the emulator out of what bench/oneproc links.
type Delivery struct {
	ID     string    `json:"id"`
	To     string    `json:"to"`
	Text   string    `json:"text"`
	Device string    `json:"device"` // the sending device's JID
	At     time.Time `json:"at"`
	// Media is set for a media message (Text is then its caption): what the
	// recipient downloaded from the emulator's media host and decrypted.
	Media *Media `json:"media,omitempty"`
}

// Media is a media message's file as its recipient decrypted it; SHA256 is
// the hex SHA-256 of the decrypted bytes.
type Media struct {
	Kind     string `json:"kind"` // image, video, voice, audio or document
	MIME     string `json:"mime"`
	SHA256   string `json:"sha256"`
	Size     int64  `json:"size"`
	Filename string `json:"filename,omitempty"`
}

// MediaState is the emulator's media host (GET/PUT /control/media): whether
// uploads stall, how many are held by the stall now, how many were stored,
// and how many the client gave up on before the answer (a killed sender).
type MediaState struct {
	Stall     bool `json:"stall"`
	Waiting   int  `json:"waiting"`
	Uploads   int  `json:"uploads"`
	Abandoned int  `json:"abandoned"`
}

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
	return c.Do(ctx, http.MethodPost, "/control/scan", map[string]string{"qr_code": qrCode, "phone": phone}, nil)
}

// BadMAC sends count messages with a corrupted MAC to phone's linked device.
func (c *Client) BadMAC(ctx context.Context, phone string, count int) error {
	return c.Do(ctx, http.MethodPost, devicePath(phone, "badmac"), map[string]int{"count": count}, nil)
}

// Logout is WhatsApp removing phone's linked device (LOGOUT).
func (c *Client) Logout(ctx context.Context, phone string) error {
	return c.Do(ctx, http.MethodPost, devicePath(phone, "logout"), nil, nil)
}

// Sent is what phone's devices sent as the recipients decrypted it: each
// (recipient, message ID) once, or with raw every delivery.
func (c *Client) Sent(ctx context.Context, phone string, raw bool) ([]Delivery, error) {
	path := devicePath(phone, "sent")
	if raw {
		path += "?raw=1"
	}
	var out []Delivery
	err := c.Do(ctx, http.MethodGet, path, nil, &out)
	return out, err
}

// SetMediaStall makes the media host hold every upload's answer (stall) or
// answer them all (!stall), so that a test can kill a sender mid-upload.
func (c *Client) SetMediaStall(ctx context.Context, stall bool) (MediaState, error) {
	var out MediaState
	err := c.Do(ctx, http.MethodPut, "/control/media", map[string]bool{"stall": stall}, &out)
	return out, err
}

// MediaState reports the media host's stall and its uploads.
func (c *Client) MediaState(ctx context.Context) (MediaState, error) {
	var out MediaState
	err := c.Do(ctx, http.MethodGet, "/control/media", nil, &out)
	return out, err
}

func devicePath(phone, action string) string {
	return "/control/devices/" + url.PathEscape(phone) + "/" + action
}

// Do calls any control route, for those the methods above do not name:
// it sends in as JSON (none when nil) and decodes a 2xx answer into out
// (ignored when nil); any other answer is an error quoting its body.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("emulator %s %s: encode: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return fmt.Errorf("emulator %s %s: %w", method, path, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("emulator %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("emulator %s %s: read: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("emulator %s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(b))
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("emulator %s %s: decode: %w", method, path, err)
	}
	return nil
}

// SetOnWhatsApp marks phone as having a WhatsApp account or not: the
// emulator's usync contact queries (whatsmeow IsOnWhatsApp) answer so.
// Every number never marked is on WhatsApp.
func (c *Client) SetOnWhatsApp(ctx context.Context, phone string, on bool) error {
	return c.Do(ctx, http.MethodPut, "/control/directory/"+url.PathEscape(phone), map[string]bool{"on_whatsapp": on}, nil)
}

// HistoryState is the emulator's history sync (GET/PUT /control/history):
// the size of the history each new link is sent (Bytes, the decoded
// waHistorySync.HistorySync; 0 sends none), and every history notification
// sent so far.
type HistoryState struct {
	Bytes int           `json:"bytes"`
	Sent  []HistorySent `json:"sent"`
}

// HistorySent is one history sync notification the phone sent a newly
// linked device: Bytes decoded, BlobBytes as stored on the media host
// (compressed and encrypted); Receipt once the device answered it with its
// hist_sync receipt (whatsmeow does, downloading or not); Downloads and
// DownloadedBytes count the GETs of its blob.
type HistorySent struct {
	Device          string `json:"device"`
	ID              string `json:"id"`
	Bytes           int    `json:"bytes"`
	BlobBytes       int    `json:"blob_bytes"`
	Receipt         bool   `json:"receipt"`
	Downloads       int    `json:"downloads"`
	DownloadedBytes int64  `json:"downloaded_bytes"`
}

// History reports the history blob size and the notifications sent.
func (c *Client) History(ctx context.Context) (HistoryState, error) {
	var out HistoryState
	err := c.Do(ctx, http.MethodGet, "/control/history", nil, &out)
	return out, err
}

// SetHistoryBytes sizes the history every later link is sent (0: none).
func (c *Client) SetHistoryBytes(ctx context.Context, n int) (HistoryState, error) {
	var out HistoryState
	err := c.Do(ctx, http.MethodPut, "/control/history", map[string]int{"bytes": n}, &out)
	return out, err
}
