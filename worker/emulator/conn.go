package emulator

import (
	"bytes"
	"context"
	"crypto/cipher"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	waBinary "go.mau.fi/whatsmeow/binary"
	"go.mau.fi/whatsmeow/proto/waWa6"
	"go.mau.fi/whatsmeow/socket"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/util/keys"
	"google.golang.org/protobuf/proto"
)

// conn is one client websocket after (or during) the noise handshake.
type conn struct {
	srv    *Server
	ws     *websocket.Conn
	ctx    context.Context
	cancel context.CancelFunc
	log    *slog.Logger

	buf         []byte
	readKey     cipher.AEAD
	readCounter uint32

	writeMu      sync.Mutex
	writeKey     cipher.AEAD
	writeCounter uint32

	noiseKey [32]byte
	payload  *waWa6.ClientPayload

	// reg is set for a connection that came to pair (no username in the
	// client payload); code once such a client asked for a pairing code;
	// device once it logged in. All three are guarded by srv.mu.
	reg    *registration
	code   *codeRequest
	device *device

	pendingMu sync.Mutex
	pending   map[string]chan *waBinary.Node
	idCounter atomic.Uint64

	terminated atomic.Bool
	done       chan struct{}
}

func newConn(srv *Server, ws *websocket.Conn, remote string) *conn {
	ctx, cancel := context.WithCancel(context.Background())
	return &conn{
		srv:     srv,
		ws:      ws,
		ctx:     ctx,
		cancel:  cancel,
		log:     srv.log.With("remote", remote),
		pending: make(map[string]chan *waBinary.Node),
		done:    make(chan struct{}),
	}
}

// nextFrame returns the next length-prefixed frame; the first call also
// consumes the WA connection header that precedes the first frame.
func (c *conn) nextFrame(withHeader bool) ([]byte, error) {
	headerLen := 0
	if withHeader {
		headerLen = len(socket.WAConnHeader)
	}
	for {
		if len(c.buf) >= headerLen+socket.FrameLengthSize {
			if withHeader && !bytes.Equal(c.buf[:headerLen], socket.WAConnHeader) {
				return nil, fmt.Errorf("unexpected connection header %x", c.buf[:headerLen])
			}
			lenBytes := c.buf[headerLen : headerLen+socket.FrameLengthSize]
			n := int(lenBytes[0])<<16 | int(lenBytes[1])<<8 | int(lenBytes[2])
			start := headerLen + socket.FrameLengthSize
			if len(c.buf) >= start+n {
				frame := bytes.Clone(c.buf[start : start+n])
				c.buf = c.buf[start+n:]
				return frame, nil
			}
		}
		typ, data, err := c.ws.Read(c.ctx)
		if err != nil {
			return nil, err
		}
		if typ != websocket.MessageBinary {
			c.log.Warn("ignoring non-binary websocket message")
			continue
		}
		c.buf = append(c.buf, data...)
	}
}

func (c *conn) writeFrame(data []byte) error {
	if len(data) >= socket.FrameMaxSize {
		return fmt.Errorf("frame of %d bytes is too large", len(data))
	}
	frame := make([]byte, socket.FrameLengthSize+len(data))
	frame[0], frame[1], frame[2] = byte(len(data)>>16), byte(len(data)>>8), byte(len(data))
	copy(frame[socket.FrameLengthSize:], data)
	return c.ws.Write(c.ctx, websocket.MessageBinary, frame)
}

// handshake runs the server half of Noise XX (handshake.go:29-128 is the
// client half) and leaves the transport ciphers and the client payload set.
func (c *conn) handshake() error {
	hs, err := newHandshakeState(socket.WAConnHeader)
	if err != nil {
		return err
	}
	first, err := c.nextFrame(true)
	if err != nil {
		return fmt.Errorf("read client hello: %w", err)
	}
	var hello waWa6.HandshakeMessage
	if err := proto.Unmarshal(first, &hello); err != nil {
		return fmt.Errorf("unmarshal client hello: %w", err)
	}
	clientEphemeral := hello.GetClientHello().GetEphemeral()
	if len(clientEphemeral) != 32 {
		return fmt.Errorf("client ephemeral key has %d bytes", len(clientEphemeral))
	}
	clientEph := [32]byte(clientEphemeral)
	hs.authenticate(clientEphemeral)

	eph := keys.NewKeyPair()
	hs.authenticate(eph.Pub[:])
	if err := hs.mixSharedSecret(eph.Priv, &clientEph); err != nil {
		return fmt.Errorf("mix ephemeral keys: %w", err)
	}
	staticCiphertext := hs.encrypt(c.srv.static.Pub[:])
	if err := hs.mixSharedSecret(c.srv.static.Priv, &clientEph); err != nil {
		return fmt.Errorf("mix server static key: %w", err)
	}
	certCiphertext := hs.encrypt(c.srv.certChain)
	serverHello, err := proto.Marshal(&waWa6.HandshakeMessage{ServerHello: &waWa6.HandshakeMessage_ServerHello{
		Ephemeral: eph.Pub[:],
		Static:    staticCiphertext,
		Payload:   certCiphertext,
	}})
	if err != nil {
		return fmt.Errorf("marshal server hello: %w", err)
	}
	if err := c.writeFrame(serverHello); err != nil {
		return fmt.Errorf("send server hello: %w", err)
	}

	second, err := c.nextFrame(false)
	if err != nil {
		return fmt.Errorf("read client finish: %w", err)
	}
	var finish waWa6.HandshakeMessage
	if err := proto.Unmarshal(second, &finish); err != nil {
		return fmt.Errorf("unmarshal client finish: %w", err)
	}
	clientStatic, err := hs.decrypt(finish.GetClientFinish().GetStatic())
	if err != nil {
		return fmt.Errorf("decrypt client static key: %w", err)
	} else if len(clientStatic) != 32 {
		return fmt.Errorf("client static key has %d bytes", len(clientStatic))
	}
	c.noiseKey = [32]byte(clientStatic)
	if err := hs.mixSharedSecret(eph.Priv, &c.noiseKey); err != nil {
		return fmt.Errorf("mix client static key: %w", err)
	}
	payloadBytes, err := hs.decrypt(finish.GetClientFinish().GetPayload())
	if err != nil {
		return fmt.Errorf("decrypt client payload: %w", err)
	}
	c.payload = &waWa6.ClientPayload{}
	if err := proto.Unmarshal(payloadBytes, c.payload); err != nil {
		return fmt.Errorf("unmarshal client payload: %w", err)
	}
	c.readKey, c.writeKey, err = hs.finish()
	return err
}

// readNode returns the next decrypted, decoded node from the client.
func (c *conn) readNode() (*waBinary.Node, error) {
	frame, err := c.nextFrame(false)
	if err != nil {
		return nil, err
	}
	plaintext, err := c.readKey.Open(nil, frameIV(c.readCounter), frame, nil)
	c.readCounter++
	if err != nil {
		return nil, fmt.Errorf("decrypt frame %d: %w", c.readCounter-1, err)
	}
	unpacked, err := waBinary.Unpack(plaintext)
	if err != nil {
		return nil, fmt.Errorf("unpack frame: %w", err)
	}
	node, err := waBinary.Unmarshal(unpacked)
	if err != nil {
		return nil, fmt.Errorf("decode node: %w", err)
	}
	return node, nil
}

func (c *conn) send(node waBinary.Node) error {
	data, err := waBinary.Marshal(node)
	if err != nil {
		return fmt.Errorf("marshal <%s>: %w", node.Tag, err)
	}
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	ciphertext := c.writeKey.Seal(nil, frameIV(c.writeCounter), data, nil)
	c.writeCounter++
	if err := c.writeFrame(ciphertext); err != nil {
		return fmt.Errorf("send <%s>: %w", node.Tag, err)
	}
	c.log.Debug("sent node", "node", node.XMLString())
	return nil
}

func (c *conn) newID() string {
	return "emu-" + strconv.FormatUint(c.idCounter.Add(1), 10)
}

// request sends a server-originated iq and waits for the client's answer.
func (c *conn) request(ctx context.Context, node waBinary.Node) (*waBinary.Node, error) {
	id := c.newID()
	node.Attrs["id"] = id
	ch := make(chan *waBinary.Node, 1)
	c.pendingMu.Lock()
	c.pending[id] = ch
	c.pendingMu.Unlock()
	defer func() {
		c.pendingMu.Lock()
		delete(c.pending, id)
		c.pendingMu.Unlock()
	}()
	if err := c.send(node); err != nil {
		return nil, err
	}
	select {
	case resp := <-ch:
		return resp, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for the client's answer to %s: %w", id, ctx.Err())
	case <-c.done:
		return nil, errors.New("client disconnected before answering")
	}
}

// deliverResponse hands an iq answer to a waiting request; false if none waits.
func (c *conn) deliverResponse(node *waBinary.Node) bool {
	id, _ := node.Attrs["id"].(string)
	c.pendingMu.Lock()
	ch, ok := c.pending[id]
	c.pendingMu.Unlock()
	if ok {
		ch <- node
	}
	return ok
}

// terminate sends a node after which the server ends the connection
// (stream:error, failure). The socket is closed only once the client closed
// it or after a grace period: closing at once races the client's handling
// of the node, and the client then sees a plain disconnect and reconnects.
func (c *conn) terminate(node waBinary.Node) error {
	if !c.terminated.CompareAndSwap(false, true) {
		return errors.New("connection is already being closed")
	}
	err := c.send(node)
	go func() {
		select {
		case <-c.done:
		case <-time.After(c.srv.closeGrace):
			c.log.Debug("closing connection after grace period")
		}
		c.close()
	}()
	return err
}

func (c *conn) close() {
	c.cancel()
	_ = c.ws.CloseNow()
}

func serverIQ(typ, xmlns string, content ...waBinary.Node) waBinary.Node {
	attrs := waBinary.Attrs{"from": types.ServerJID, "type": typ}
	if xmlns != "" {
		attrs["xmlns"] = xmlns
	}
	node := waBinary.Node{Tag: "iq", Attrs: attrs}
	if len(content) > 0 {
		node.Content = content
	}
	return node
}

// result answers a client iq.
func result(req *waBinary.Node, content ...waBinary.Node) waBinary.Node {
	node := serverIQ("result", "", content...)
	node.Attrs["id"] = req.Attrs["id"]
	return node
}
