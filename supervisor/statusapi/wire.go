package statusapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
)

// jsonErrorListener hands out connections that rewrite the errors Go's HTTP
// server answers by itself into the API's JSON error shape.
type jsonErrorListener struct{ net.Listener }

func (l jsonErrorListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &jsonErrorConn{Conn: c}, nil
}

// plainErrorHeaders ends the header of each answer net/http writes before
// any handler runs: 431 for a header over MaxHeaderBytes, 400 for a request
// it cannot parse (with the reason after a colon when it has one), 501 for
// an unknown transfer coding. It writes each with one Write straight to the
// connection, in plain text. The API's own answers never carry this header
// (they are JSON, and JSON escapes control characters in a body), so a
// Write holding it is one of those answers.
const plainErrorHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"

// jsonErrorConn keeps README's promise that every error is JSON, also for
// requests the handler never sees.
type jsonErrorConn struct{ net.Conn }

func (c *jsonErrorConn) Write(p []byte) (int, error) {
	reply, ok := jsonServerError(p)
	if !ok {
		return c.Conn.Write(p)
	}
	if _, err := c.Conn.Write(reply); err != nil {
		return 0, err
	}
	return len(p), nil
}

// CloseWrite is what net/http calls after an error answer so that the
// client reads it before the connection closes (a FIN, then a pause, rather
// than a reset); without it on the wrapper that step would be skipped.
// TCP and unix connections both have it.
func (c *jsonErrorConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// jsonServerError turns one of net/http's plain-text answers into JSON.
func jsonServerError(p []byte) ([]byte, bool) {
	const proto = "HTTP/1.1 "
	// The prefix first: most writes are the bodies of answers.
	if !bytes.HasPrefix(p, []byte(proto)) {
		return nil, false
	}
	head, body, ok := bytes.Cut(p, []byte(plainErrorHeaders))
	if !ok || len(head) < len(proto)+3 {
		return nil, false
	}
	status, err := strconv.Atoi(string(head[len(proto) : len(proto)+3]))
	if err != nil || status < 400 {
		return nil, false
	}
	var e ErrorBody
	switch status {
	case http.StatusRequestHeaderFieldsTooLarge:
		e = ErrorBody{Code: "headers_too_large", Error: "the request's headers are larger than the API accepts"}
	case http.StatusNotImplemented:
		e = ErrorBody{Code: "not_implemented", Error: "the request's Transfer-Encoding is not supported; send a Content-Length or chunked body"}
	default:
		// The reason net/http gives ("missing required Host header",
		// "unsupported protocol version") names no caller data.
		_, reason, _ := strings.Cut(string(body), ": ")
		if reason == "" {
			reason = "it is not valid HTTP/1.1"
		}
		e = ErrorBody{Code: strings.ReplaceAll(strings.ToLower(http.StatusText(status)), " ", "_"),
			Error: "the request could not be read: " + reason}
	}
	b, err := json.Marshal(e)
	if err != nil {
		return nil, false
	}
	b = append(b, '\n')
	reply := fmt.Appendf(nil, "HTTP/1.1 %d %s\r\nContent-Type: application/json; charset=utf-8\r\n"+
		"X-Content-Type-Options: nosniff\r\nCache-Control: no-store\r\nContent-Length: %d\r\nConnection: close\r\n\r\n",
		status, http.StatusText(status), len(b))
	return append(reply, b...), true
}
