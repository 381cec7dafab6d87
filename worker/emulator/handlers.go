package emulator

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/coder/websocket"
	"go.mau.fi/libsignal/keys/prekey"
	waBinary "go.mau.fi/whatsmeow/binary"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/util/keys"
)

var errOffline = errors.New("device is not connected")

// run drives one connection from the handshake until it closes.
func (c *conn) run() {
	if err := c.handshake(); err != nil {
		c.log.Warn("noise handshake failed", "err", err)
		return
	}
	var err error
	switch {
	case c.payload.Username != nil:
		err = c.login()
	case c.payload.DevicePairingData != nil:
		err = c.startPairing()
	default:
		err = errors.New("client payload has neither credentials nor pairing data")
	}
	if err != nil {
		c.log.Warn("could not start session", "err", err)
		return
	}
	for {
		node, err := c.readNode()
		if err != nil {
			status := websocket.CloseStatus(err)
			if c.ctx.Err() == nil && status != websocket.StatusNormalClosure && status != websocket.StatusGoingAway {
				c.log.Info("connection ended", "err", err)
			} else {
				c.log.Debug("connection closed")
			}
			return
		}
		c.log.Debug("received node", "node", node.XMLString())
		c.handleNode(node)
	}
}

func (c *conn) handleNode(node *waBinary.Node) {
	var err error
	switch node.Tag {
	case "iq":
		err = c.handleIQ(node)
	case "message":
		err = c.handleOutgoingMessage(node)
	case "receipt":
		err = c.handleReceipt(node)
	case "ack", "presence", "chatstate":
		// Acks of what the emulator delivered and presence updates need no answer.
	default:
		c.log.Warn("unhandled stanza from client", "tag", node.Tag, "node", node.XMLString())
	}
	if err != nil {
		c.log.Error("handling client node failed", "tag", node.Tag, "err", err)
	}
}

func (c *conn) handleIQ(node *waBinary.Node) error {
	ag := node.AttrGetter()
	typ, xmlns := ag.OptionalString("type"), ag.OptionalString("xmlns")
	if typ == "result" || typ == "error" {
		if !c.deliverResponse(node) {
			c.log.Debug("client answered an iq nobody waits for", "id", node.Attrs["id"], "type", typ)
		}
		return nil
	}
	children := node.GetChildren()
	first := ""
	if len(children) > 0 {
		first = children[0].Tag
	}
	c.srv.mu.Lock()
	dev := c.device
	c.srv.mu.Unlock()
	loggedIn := dev != nil

	switch {
	case xmlns == "w:p" && typ == "get":
		return c.send(result(node))
	case xmlns == "passive" && typ == "set" && loggedIn:
		if err := c.send(result(node)); err != nil || first != "active" {
			return err
		}
		// An active device is told that its offline backlog (always empty
		// here) is through, as WhatsApp does after every login.
		return c.send(waBinary.Node{Tag: "ib", Content: []waBinary.Node{
			{Tag: "offline", Attrs: waBinary.Attrs{"count": "0"}},
		}})
	case xmlns == "encrypt" && typ == "get" && first == "count" && loggedIn:
		c.srv.mu.Lock()
		count := len(dev.preKeys)
		c.srv.mu.Unlock()
		return c.send(result(node, waBinary.Node{Tag: "count", Attrs: waBinary.Attrs{"value": fmt.Sprint(count)}}))
	case xmlns == "encrypt" && typ == "set" && loggedIn:
		if err := c.srv.storePreKeys(dev, node); err != nil {
			_ = c.send(iqError(node, 400, "bad-request"))
			return fmt.Errorf("prekey upload: %w", err)
		}
		if err := c.send(result(node)); err != nil {
			return err
		}
		// The first upload is the end of the first login after pairing:
		// the companion can now be sent its history.
		c.srv.maybeSendHistory(c, dev)
		return nil
	case xmlns == "encrypt" && typ == "get" && first == "key" && loggedIn:
		resp, err := c.srv.preKeyBundles(c.ctx, dev, node.GetChildByTag("key"))
		if err != nil {
			_ = c.send(iqError(node, 500, "internal-server-error"))
			return fmt.Errorf("prekey fetch: %w", err)
		}
		return c.send(result(node, resp))
	case xmlns == "md" && typ == "set" && first == "remove-companion-device" && loggedIn:
		// The client unlinks itself (Client.Logout, client.go:645); it closes
		// the socket once answered.
		c.srv.mu.Lock()
		dev.removed = true
		c.srv.mu.Unlock()
		c.log.Info("device unlinked itself")
		return c.send(result(node))
	case xmlns == "md" && typ == "set" && first == "link_code_companion_reg" && !loggedIn:
		return c.handleLinkCode(node)
	case xmlns == "w:m" && typ == "set" && first == "media_conn" && loggedIn:
		return c.send(result(node, c.srv.media.mediaConn()))
	case xmlns == "usync" && typ == "get" && loggedIn:
		return c.send(result(node, c.srv.usync(dev, node.GetChildByTag("usync"))))
	}
	what := strings.TrimSpace(fmt.Sprintf("%s %s %s", xmlns, typ, first))
	if !loggedIn {
		what += " (before login)"
	}
	c.srv.recordUnknownIQ(what)
	c.log.Error("UNKNOWN IQ: the emulator does not implement this query", "iq", what, "node", node.XMLString())
	// An answer keeps the client from stalling 75 s on the request (request.go:150).
	return c.send(iqError(node, 501, "feature-not-implemented"))
}

func iqError(req *waBinary.Node, code int, text string) waBinary.Node {
	node := serverIQ("error", "", waBinary.Node{Tag: "error", Attrs: waBinary.Attrs{"code": fmt.Sprint(code), "text": text}})
	node.Attrs["id"] = req.Attrs["id"]
	return node
}

// storePreKeys records an "encrypt set" upload (prekeys.go:64-90).
func (s *Server) storePreKeys(dev *device, node *waBinary.Node) error {
	regID, ok := node.GetChildByTag("registration").Content.([]byte)
	if !ok || len(regID) != 4 {
		return errors.New("missing registration id")
	}
	identityKey, ok := node.GetChildByTag("identity").Content.([]byte)
	if !ok || len(identityKey) != 32 {
		return errors.New("missing identity key")
	}
	signed, err := parsePreKey(node.GetChildByTag("skey"), true)
	if err != nil {
		return fmt.Errorf("signed prekey: %w", err)
	}
	listNode := node.GetChildByTag("list")
	list := listNode.GetChildren()
	preKeys := make([]*keys.PreKey, 0, len(list))
	for _, child := range list {
		pk, err := parsePreKey(child, false)
		if err != nil {
			return fmt.Errorf("prekey: %w", err)
		}
		preKeys = append(preKeys, pk)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if [32]byte(identityKey) != dev.identityKey {
		return errors.New("identity key differs from the one the device paired with")
	}
	dev.registrationID = binary.BigEndian.Uint32(regID)
	dev.signedPreKey = signed
	dev.preKeys = append(dev.preKeys, preKeys...)
	return nil
}

func parsePreKey(node waBinary.Node, signed bool) (*keys.PreKey, error) {
	id, ok := node.GetChildByTag("id").Content.([]byte)
	if !ok || len(id) != 3 {
		return nil, errors.New("missing 3-byte id")
	}
	pub, ok := node.GetChildByTag("value").Content.([]byte)
	if !ok || len(pub) != 32 {
		return nil, errors.New("missing 32-byte value")
	}
	pk := &keys.PreKey{
		KeyPair: keys.KeyPair{Pub: (*[32]byte)(pub)},
		KeyID:   binary.BigEndian.Uint32(append([]byte{0}, id...)),
	}
	if signed {
		sig, ok := node.GetChildByTag("signature").Content.([]byte)
		if !ok || len(sig) != 64 {
			return nil, errors.New("missing 64-byte signature")
		}
		pk.Signature = (*[64]byte)(sig)
	}
	return pk, nil
}

// preKeyBundles answers "encrypt get <key>": every other user is an emulated
// peer with one device (0). The asking device's own number has no bundle to
// give, which is why usync lists no devices for it.
func (s *Server) preKeyBundles(ctx context.Context, dev *device, key waBinary.Node) (waBinary.Node, error) {
	var users []waBinary.Node
	for _, user := range key.GetChildren() {
		jid, ok := user.Attrs["jid"].(types.JID)
		if !ok {
			continue
		}
		if jid.User == dev.jid.User || jid.Device != 0 || jid.Server != types.DefaultUserServer {
			users = append(users, waBinary.Node{Tag: "user", Attrs: waBinary.Attrs{"jid": jid}, Content: []waBinary.Node{
				{Tag: "error", Attrs: waBinary.Attrs{"code": "404", "text": "item-not-found"}},
			}})
			continue
		}
		p, err := s.peer(ctx, jid.User)
		if err != nil {
			return waBinary.Node{}, err
		}
		bundle, err := p.bundleNode(ctx)
		if err != nil {
			return waBinary.Node{}, err
		}
		users = append(users, bundle)
	}
	return waBinary.Node{Tag: "list", Content: users}, nil
}

// usync answers device-list and contact queries (user.go:448, 836-906;
// IsOnWhatsApp at user.go:168). Every valid number is on WhatsApp, as a
// regular (non-business) user, unless the directory marks it off: then the
// contact query answers "out" and its device list is empty.
func (s *Server) usync(dev *device, query waBinary.Node) waBinary.Node {
	queryNode, listNode := query.GetChildByTag("query"), query.GetChildByTag("list")
	wanted := queryNode.GetChildren()
	var users []waBinary.Node
	for _, user := range listNode.GetChildren() {
		jid, ok := user.Attrs["jid"].(types.JID)
		contact, _ := user.GetChildByTag("contact").Content.([]byte)
		if !ok {
			// Contact lookups name the user only by number: "573...@c.us" or "+573...".
			number, err := numberOf(strings.TrimSuffix(string(contact), "@"+types.LegacyUserServer))
			if err != nil {
				continue
			}
			jid = types.NewJID(number, types.DefaultUserServer)
		}
		registered := s.onWhatsApp(jid.User)
		var parts []waBinary.Node
		for _, q := range wanted {
			switch q.Tag {
			case "devices":
				var devices []waBinary.Node
				// whatsmeow does not drop its own number's devices from this list
				// and would then fetch its own prekeys: list none for it.
				if jid.User != dev.jid.User && registered {
					devices = []waBinary.Node{{Tag: "device", Attrs: waBinary.Attrs{"id": "0"}}}
				}
				parts = append(parts, waBinary.Node{Tag: "devices", Content: []waBinary.Node{
					{Tag: "device-list", Content: devices},
				}})
			case "contact":
				node := waBinary.Node{Tag: "contact", Attrs: waBinary.Attrs{"type": "in"}}
				if !registered {
					node.Attrs["type"] = "out"
				}
				if contact != nil {
					node.Content = contact
				}
				parts = append(parts, node)
			case "business":
				// No business node: a regular account without a verified name.
			default:
				s.recordUnknownIQ("usync query " + q.Tag)
				s.log.Error("UNKNOWN IQ: usync query the emulator does not implement", "query", q.Tag)
			}
		}
		users = append(users, waBinary.Node{Tag: "user", Attrs: waBinary.Attrs{"jid": jid}, Content: parts})
	}
	return waBinary.Node{Tag: "usync", Attrs: query.Attrs, Content: []waBinary.Node{
		{Tag: "result"},
		{Tag: "list", Content: users},
	}}
}

// handleOutgoingMessage lets each addressed peer decrypt what the device sent,
// records it, acks it (send.go:376-440 waits for that ack) and, if a peer
// could read it, delivers that peer's delivery receipt.
func (c *conn) handleOutgoingMessage(node *waBinary.Node) error {
	s := c.srv
	s.mu.Lock()
	dev := c.device
	s.mu.Unlock()
	id, _ := node.Attrs["id"].(string)
	to, _ := node.Attrs["to"].(types.JID)
	if dev == nil {
		return fmt.Errorf("message %s before login", id)
	}
	if code, refused := s.refuse(dev.phone, to.User); refused {
		c.log.Info("message refused as armed", "id", id, "to", to.String(), "code", code)
		return c.send(waBinary.Node{Tag: "ack", Attrs: waBinary.Attrs{"class": "message", "id": id, "from": to,
			"t": fmt.Sprint(time.Now().Unix()), "error": fmt.Sprint(code)}})
	}
	delivered := false
	participants := node.GetChildByTag("participants")
	for _, participant := range participants.GetChildren() {
		recipient, _ := participant.Attrs["jid"].(types.JID)
		enc := participant.GetChildByTag("enc")
		content, _ := enc.Content.([]byte)
		if recipient.User == dev.jid.User || recipient.Device != 0 {
			c.log.Warn("message addressed to a device the emulator does not run", "id", id, "to", recipient.String())
			continue
		}
		p, err := s.peer(c.ctx, recipient.User)
		if err != nil {
			return err
		}
		msg, err := p.decrypt(c.ctx, dev.jid, enc.AttrGetter().OptionalString("type"), content)
		if err != nil {
			c.log.Error("recipient could not decrypt message", "id", id, "to", recipient.String(), "err", err)
			continue
		}
		d := Delivery{ID: id, To: recipient.User, Text: messageText(msg), Device: dev.jid.String()}
		if f, ok := mediaOf(msg); ok {
			if d.Media, err = s.media.receive(c.ctx, f); err != nil {
				c.log.Error("recipient could not receive media", "id", id, "to", recipient.String(), "err", err)
				continue
			}
			d.Text = f.caption
		}
		d.At = time.Now()
		s.mu.Lock()
		dev.phone.deliveries = append(dev.phone.deliveries, d)
		s.mu.Unlock()
		delivered = true
		c.log.Info("recipient decrypted message", "id", id, "to", recipient.String())
	}
	now := fmt.Sprint(time.Now().Unix())
	if err := c.send(waBinary.Node{Tag: "ack", Attrs: waBinary.Attrs{"class": "message", "id": id, "from": to, "t": now}}); err != nil || !delivered {
		return err
	}
	return c.send(waBinary.Node{Tag: "receipt", Attrs: waBinary.Attrs{"from": to, "id": id, "t": now}})
}

// handleReceipt acks the device's receipts; retry receipts are counted, which
// is what a Bad MAC on the device produces.
func (c *conn) handleReceipt(node *waBinary.Node) error {
	ag := node.AttrGetter()
	id, typ := ag.OptionalString("id"), ag.OptionalString("type")
	switch typ {
	case "retry":
		c.srv.mu.Lock()
		c.srv.retryCounts[id]++
		c.srv.mu.Unlock()
		c.log.Info("device asked for a retry of a message it could not decrypt", "id", id)
	case "hist_sync":
		c.srv.recordHistoryReceipt(id)
	}
	ack := waBinary.Node{Tag: "ack", Attrs: waBinary.Attrs{"class": "receipt", "id": id}}
	if typ != "" {
		ack.Attrs["type"] = typ
	}
	if from, ok := node.Attrs["to"].(types.JID); ok {
		ack.Attrs["from"] = from
	}
	return c.send(ack)
}

// deliver sends a message from the peer with number from to dev; with
// corrupt, its MAC is broken so the device's libsignal rejects it.
func (s *Server) deliver(ctx context.Context, dev *device, from, text string, corrupt bool) (string, error) {
	p, err := s.peer(ctx, from)
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	c := dev.conn
	s.mu.Unlock()
	if c == nil {
		return "", errOffline
	}
	ciphertext, err := p.encrypt(ctx, dev.jid, text, func() (*prekey.Bundle, error) { return s.takeBundle(dev) })
	if err != nil {
		return "", err
	}
	content := ciphertext.Serialize()
	if corrupt {
		if content, err = corruptMAC(ciphertext); err != nil {
			return "", err
		}
	}
	id := "3EB0" + strings.ToUpper(hex.EncodeToString(randomBytes(8)))
	err = c.send(waBinary.Node{
		Tag: "message",
		Attrs: waBinary.Attrs{
			"from":   p.jid,
			"id":     id,
			"t":      fmt.Sprint(time.Now().Unix()),
			"type":   "text",
			"notify": "Peer " + from,
		},
		Content: []waBinary.Node{{
			Tag:     "enc",
			Attrs:   waBinary.Attrs{"v": "2", "type": encType(ciphertext)},
			Content: content,
		}},
	})
	if err != nil {
		return "", err
	}
	s.log.Info("delivered message from peer", "id", id, "from", from, "to", dev.jid.String(), "corrupt_mac", corrupt)
	return id, nil
}
