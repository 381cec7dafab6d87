// Package apiclient is the operator CLI's client for a running supervisor's
// status API. It reaches the daemon through the same listen address and key
// the daemon reads from its config, unix socket included, and hands back the
// server's own error sentence so operators see why a call was refused.
package apiclient

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/config"
	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/statusapi"
)

// APIError is an answer other than 2xx. Code and Message come from the
// server's `{"error", "code"}` body; Code is empty when something other than
// the status API answered.
type APIError struct {
	Status  int
	Code    string
	Message string
	// RetryAfter is the server's Retry-After on a 409 cooldown, 0 otherwise.
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("status api: HTTP %d: %s", e.Status, e.Message)
	}
	return fmt.Sprintf("status api: %s (%s, HTTP %d)", e.Message, e.Code, e.Status)
}

// Client talks to one supervisor. It is safe for concurrent use.
type Client struct {
	listen string
	base   string
	apiKey string
	http   *http.Client
}

// Option changes how New builds a client.
type Option func(*options)

type options struct {
	wrap func(http.RoundTripper) http.RoundTripper
}

// WithTransport wraps the client's transport, e.g. to log or check every
// answer; the wrapped one already dials the listen address.
func WithTransport(wrap func(http.RoundTripper) http.RoundTripper) Option {
	return func(o *options) { o.wrap = wrap }
}

// New returns a client for a listen address as written in the config:
// "host:port" or "unix:/path".
func New(listen, apiKey string, opts ...Option) *Client {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	// No proxy: the API is local by design, and a proxy from the
	// environment would either fail or see the key.
	tr := &http.Transport{Proxy: nil, MaxIdleConns: 2}
	base := "http://" + listen
	if path, ok := config.IsUnixListen(listen); ok {
		var d net.Dialer
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", path)
		}
		// The host is only a placeholder: every connection goes to the socket.
		base = "http://wa-supervisor"
	}
	var rt http.RoundTripper = tr
	if o.wrap != nil {
		rt = o.wrap(tr)
	}
	return &Client{listen: listen, base: base, apiKey: apiKey, http: &http.Client{Transport: rt}}
}

// Healthz reports whether the daemon answers at all.
func (c *Client) Healthz(ctx context.Context) error {
	var body struct {
		Status string `json:"status"`
	}
	if err := c.do(ctx, http.MethodGet, "/healthz", nil, &body); err != nil {
		return err
	}
	if body.Status != "ok" {
		return fmt.Errorf("status api: healthz says %q", body.Status)
	}
	return nil
}

// Ready reports whether the daemon has loaded its state and its commits go
// through: nil, or the server's 503 (booting, persist_failed).
func (c *Client) Ready(ctx context.Context) error {
	return c.do(ctx, http.MethodGet, "/readyz", nil, nil)
}

// List returns every organization's status.
func (c *Client) List(ctx context.Context) ([]state.Snapshot, error) {
	snaps, _, err := c.ListCluster(ctx)
	return snaps, err
}

// ListCluster returns every organization's status and, in a cluster, the
// nodes that did not answer (X-Wa-Sidecar-Unreachable-Nodes): their
// organizations are missing from the list.
func (c *Client) ListCluster(ctx context.Context) ([]state.Snapshot, []string, error) {
	var snaps []state.Snapshot
	h, err := c.send(ctx, http.MethodGet, "/v1/orgs", nil, &snaps)
	if err != nil {
		return nil, nil, err
	}
	var unreachable []string
	for _, n := range strings.Split(h.Get(statusapi.UnreachableHeader), ",") {
		if n = strings.TrimSpace(n); n != "" {
			unreachable = append(unreachable, n)
		}
	}
	return snaps, unreachable, nil
}

// Status returns one organization's status.
func (c *Client) Status(ctx context.Context, id string) (state.Snapshot, error) {
	return c.snapshot(ctx, http.MethodGet, orgPath(id, ""))
}

// Start registers the organization if new and starts or links it.
func (c *Client) Start(ctx context.Context, id string) (state.Snapshot, error) {
	return c.snapshot(ctx, http.MethodPost, orgPath(id, "/start"))
}

// StartWith is Start with a body: force, or a new proxy.
func (c *Client) StartWith(ctx context.Context, id string, req statusapi.StartRequest) (state.Snapshot, error) {
	var s state.Snapshot
	err := c.do(ctx, http.MethodPost, orgPath(id, "/start"), req, &s)
	return s, err
}

// Stop stops the worker and keeps the auth directory.
func (c *Client) Stop(ctx context.Context, id string) (state.Snapshot, error) {
	return c.snapshot(ctx, http.MethodPost, orgPath(id, "/stop"))
}

// Logout unlinks the device.
func (c *Client) Logout(ctx context.Context, id string) (state.Snapshot, error) {
	return c.snapshot(ctx, http.MethodPost, orgPath(id, "/logout"))
}

// Clear archives the auth directory and relinks.
func (c *Client) Clear(ctx context.Context, id string) (state.Snapshot, error) {
	return c.snapshot(ctx, http.MethodPost, orgPath(id, "/clear"))
}

// Delete stops the organization and forgets it.
func (c *Client) Delete(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, orgPath(id, ""), nil, nil)
}

// PairPhone asks for a pairing code to type on the phone.
func (c *Client) PairPhone(ctx context.Context, id, phone string) (string, error) {
	var body struct {
		Code string `json:"code"`
	}
	err := c.do(ctx, http.MethodPost, orgPath(id, "/pair-phone"), map[string]string{"phone": phone}, &body)
	return body.Code, err
}

// ClearCorruptedSession calls the endpoint kept for the old Node servers'
// callers, POST /api/clear-corrupted-session.
func (c *Client) ClearCorruptedSession(ctx context.Context, id string) (statusapi.ClearCorruptedSessionResponse, error) {
	var body statusapi.ClearCorruptedSessionResponse
	err := c.do(ctx, http.MethodPost, "/api/clear-corrupted-session", map[string]string{"organization_id": id}, &body)
	return body, err
}

// Send queues a text message; key, when set, makes a retry of the call
// return the first message instead of queueing a second one.
func (c *Client) Send(ctx context.Context, id, to, text, key string) (statusapi.MessageBody, error) {
	var m statusapi.MessageBody
	err := c.do(ctx, http.MethodPost, orgPath(id, "/messages"), statusapi.MessageRequest{To: to, Text: text, IdempotencyKey: key}, &m)
	return m, err
}

// Message returns one message.
func (c *Client) Message(ctx context.Context, id, msg string) (statusapi.MessageBody, error) {
	var m statusapi.MessageBody
	err := c.do(ctx, http.MethodGet, orgPath(id, "/messages/"+url.PathEscape(msg)), nil, &m)
	return m, err
}

// Messages lists messages, newest first; status, limit and after are the
// query's filters ("" and 0 leave them out).
func (c *Client) Messages(ctx context.Context, id, status string, limit int, after string) (statusapi.MessageList, error) {
	q := url.Values{}
	if status != "" {
		q.Set("status", status)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if after != "" {
		q.Set("after", after)
	}
	path := orgPath(id, "/messages")
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var l statusapi.MessageList
	err := c.do(ctx, http.MethodGet, path, nil, &l)
	return l, err
}

// CreateBroadcast queues one text for many recipients.
func (c *Client) CreateBroadcast(ctx context.Context, id string, recipients []string, text, key string) (statusapi.BroadcastBody, error) {
	var b statusapi.BroadcastBody
	err := c.do(ctx, http.MethodPost, orgPath(id, "/broadcasts"),
		statusapi.BroadcastRequest{Recipients: recipients, Text: text, IdempotencyKey: key}, &b)
	return b, err
}

// CreateMediaBroadcast queues an uploaded file for many recipients, text
// as its caption.
func (c *Client) CreateMediaBroadcast(ctx context.Context, id string, recipients []string, media, caption string) (statusapi.BroadcastBody, error) {
	var b statusapi.BroadcastBody
	err := c.do(ctx, http.MethodPost, orgPath(id, "/broadcasts"),
		statusapi.BroadcastRequest{Recipients: recipients, Media: media, Text: caption}, &b)
	return b, err
}

// CheckNumbers asks whether numbers are on WhatsApp: cached answers, or
// the organization's worker asks WhatsApp.
func (c *Client) CheckNumbers(ctx context.Context, id string, numbers []string) (statusapi.CheckResponse, error) {
	var r statusapi.CheckResponse
	err := c.do(ctx, http.MethodPost, orgPath(id, "/contacts/check"), statusapi.CheckRequest{Numbers: numbers}, &r)
	return r, err
}

// Broadcast returns one job with its progress.
func (c *Client) Broadcast(ctx context.Context, id, job string) (statusapi.BroadcastBody, error) {
	var b statusapi.BroadcastBody
	err := c.do(ctx, http.MethodGet, orgPath(id, "/broadcasts/"+url.PathEscape(job)), nil, &b)
	return b, err
}

// Broadcasts lists the organization's jobs, newest first.
func (c *Client) Broadcasts(ctx context.Context, id string) (statusapi.BroadcastList, error) {
	var l statusapi.BroadcastList
	err := c.do(ctx, http.MethodGet, orgPath(id, "/broadcasts"), nil, &l)
	return l, err
}

// CancelBroadcast cancels a job; its unsent messages fail.
func (c *Client) CancelBroadcast(ctx context.Context, id, job string) (statusapi.BroadcastBody, error) {
	var b statusapi.BroadcastBody
	err := c.do(ctx, http.MethodPost, orgPath(id, "/broadcasts/"+url.PathEscape(job)+"/cancel"), nil, &b)
	return b, err
}

// orgPath escapes the ID so that a malformed one reaches the server whole,
// which then refuses it with its own sentence, rather than a different route.
func orgPath(id, suffix string) string {
	return "/v1/orgs/" + url.PathEscape(id) + suffix
}

func (c *Client) snapshot(ctx context.Context, method, path string) (state.Snapshot, error) {
	var s state.Snapshot
	err := c.do(ctx, method, path, nil, &s)
	return s, err
}

// UploadMedia stores a file for media messages (POST /v1/orgs/{id}/media).
func (c *Client) UploadMedia(ctx context.Context, id string, data []byte, mime, filename string) (statusapi.MediaBody, error) {
	var m statusapi.MediaBody
	err := c.do(ctx, http.MethodPost, orgPath(id, "/media"), statusapi.MediaRequest{
		Data: base64.StdEncoding.EncodeToString(data), MIME: mime, Filename: filename}, &m)
	return m, err
}

// SendMedia queues an uploaded file to one number, text as its caption.
func (c *Client) SendMedia(ctx context.Context, id, to, media, caption, key string) (statusapi.MessageBody, error) {
	var m statusapi.MessageBody
	err := c.do(ctx, http.MethodPost, orgPath(id, "/messages"), statusapi.MessageRequest{To: to, Media: media, Text: caption, IdempotencyKey: key}, &m)
	return m, err
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	_, err := c.send(ctx, method, path, in, out)
	return err
}

// send is do that also hands back the answer's headers.
func (c *Client) send(ctx context.Context, method, path string, in, out any) (http.Header, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("status api: encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, fmt.Errorf("status api: %w", err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.apiKey != "" {
		req.Header.Set("x-api-key", c.apiKey)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		// A daemon that is down or a socket the caller may not open is the
		// usual failure; say so with the address from the config rather
		// than with the placeholder URL a unix socket is dialled through.
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" && ctx.Err() == nil {
			return nil, fmt.Errorf("status api: cannot reach the daemon at %s: %w", c.listen, op.Err)
		}
		return nil, fmt.Errorf("status api: %w", err)
	}
	defer resp.Body.Close()
	// Bounded: a snapshot list is small, and a wrong server must not make
	// the CLI read forever.
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, fmt.Errorf("status api: read %s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		ae := apiError(resp.StatusCode, raw)
		if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
			ae.RetryAfter = time.Duration(secs) * time.Second
		}
		return nil, ae
	}
	if out == nil {
		return resp.Header, nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return nil, fmt.Errorf("status api: decode %s %s: %w", method, path, err)
	}
	return resp.Header, nil
}

func apiError(status int, raw []byte) *APIError {
	var body struct {
		Error string `json:"error"`
		Code  string `json:"code"`
	}
	if err := json.Unmarshal(raw, &body); err == nil && body.Code != "" {
		return &APIError{Status: status, Code: body.Code, Message: body.Error}
	}
	msg := strings.TrimSpace(string(raw))
	if len(msg) > 200 {
		msg = msg[:200] + "..."
	}
	if msg == "" {
		msg = http.StatusText(status)
	}
	return &APIError{Status: status, Message: msg}
}

// IsCode reports whether err is an *APIError with the given code, such as
// "unknown_org" or "cooldown".
func IsCode(err error, code string) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Code == code
}
