package emulator

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"

	"go.mau.fi/libsignal/ecc"
	"go.mau.fi/libsignal/keys/identity"
	"go.mau.fi/libsignal/keys/prekey"
	"go.mau.fi/libsignal/protocol"
	"go.mau.fi/libsignal/session"
	"go.mau.fi/libsignal/util/optional"
	waBinary "go.mau.fi/whatsmeow/binary"
	"go.mau.fi/whatsmeow/proto/waAdv"
	"go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/store"
	"go.mau.fi/whatsmeow/types"
	"google.golang.org/protobuf/proto"
)

// peer is another WhatsApp user (their phone, device 0) that talks to linked
// devices. It keeps a real Signal store, a whatsmeow store.Device in the
// emulator's own SQLite database: libsignal's in-memory test stores key
// sessions by address pointer and lose them between calls.
type peer struct {
	jid types.JID
	// mu serializes Signal operations: a session is loaded, advanced and
	// saved per message, and two at once would fork the ratchet.
	mu    sync.Mutex
	store *store.Device
}

var serializer = store.SignalProtobufSerializer

// peer returns the emulated user for number, creating its store on first use.
func (s *Server) peer(ctx context.Context, number string) (*peer, error) {
	s.peersMu.Lock()
	defer s.peersMu.Unlock()
	if p, ok := s.peers[number]; ok {
		return p, nil
	}
	jid := types.NewJID(number, types.DefaultUserServer)
	dev := s.peerDB.NewDevice()
	dev.ID = &jid
	// A primary phone has no companion signature of its own, but the device
	// table requires the columns to be filled.
	dev.Account = &waAdv.ADVSignedDeviceIdentity{
		Details:             []byte{},
		AccountSignature:    make([]byte, 64),
		AccountSignatureKey: dev.IdentityKey.Pub[:],
		DeviceSignature:     make([]byte, 64),
	}
	if err := dev.Save(ctx); err != nil {
		return nil, fmt.Errorf("create store for peer %s: %w", number, err)
	}
	p := &peer{jid: jid, store: dev}
	s.peers[number] = p
	return p, nil
}

// bundleNode is the peer's answer to a prekey fetch (prekeys.go:124-155).
func (p *peer) bundleNode(ctx context.Context) (waBinary.Node, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	preKey, err := p.store.PreKeys.GenOnePreKey(ctx)
	if err != nil {
		return waBinary.Node{}, fmt.Errorf("generate prekey for peer %s: %w", p.jid, err)
	}
	var regID [4]byte
	binary.BigEndian.PutUint32(regID[:], p.store.RegistrationID)
	return waBinary.Node{Tag: "user", Attrs: waBinary.Attrs{"jid": p.jid}, Content: []waBinary.Node{
		{Tag: "registration", Content: regID[:]},
		{Tag: "type", Content: []byte{ecc.DjbType}},
		{Tag: "identity", Content: p.store.IdentityKey.Pub[:]},
		preKeyNode("key", preKey.KeyID, preKey.Pub, nil),
		preKeyNode("skey", p.store.SignedPreKey.KeyID, p.store.SignedPreKey.Pub, p.store.SignedPreKey.Signature),
	}}, nil
}

// encrypt encrypts a text message from the peer to a linked device. If the
// peer has no session with it yet, takeBundle supplies the device's uploaded
// keys (and consumes one of its one-time prekeys).
func (p *peer) encrypt(ctx context.Context, to types.JID, text string, takeBundle func() (*prekey.Bundle, error)) (protocol.CiphertextMessage, error) {
	return p.encryptMessage(ctx, to, &waE2E.Message{Conversation: proto.String(text)}, takeBundle)
}

// encryptMessage is encrypt for any message.
func (p *peer) encryptMessage(ctx context.Context, to types.JID, msg *waE2E.Message, takeBundle func() (*prekey.Bundle, error)) (protocol.CiphertextMessage, error) {
	plaintext, err := proto.Marshal(msg)
	if err != nil {
		return nil, fmt.Errorf("marshal message: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	addr := to.SignalAddress()
	builder := session.NewBuilderFromSignal(p.store, addr, serializer)
	hasSession, err := p.store.ContainsSession(ctx, addr)
	if err != nil {
		return nil, fmt.Errorf("look up session with %s: %w", to, err)
	}
	if !hasSession {
		bundle, err := takeBundle()
		if err != nil {
			return nil, err
		}
		if err := builder.ProcessBundle(ctx, bundle); err != nil {
			return nil, fmt.Errorf("process prekey bundle of %s: %w", to, err)
		}
	}
	ciphertext, err := session.NewCipher(builder, addr).Encrypt(ctx, pad(plaintext))
	if err != nil {
		return nil, fmt.Errorf("encrypt for %s: %w", to, err)
	}
	return ciphertext, nil
}

// decrypt decrypts what a linked device sent to the peer and returns the message.
func (p *peer) decrypt(ctx context.Context, from types.JID, encType string, content []byte) (*waE2E.Message, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	addr := from.SignalAddress()
	cipher := session.NewCipher(session.NewBuilderFromSignal(p.store, addr, serializer), addr)
	var plaintext []byte
	switch encType {
	case "pkmsg":
		msg, err := protocol.NewPreKeySignalMessageFromBytes(content, serializer.PreKeySignalMessage, serializer.SignalMessage)
		if err != nil {
			return nil, fmt.Errorf("parse prekey message: %w", err)
		}
		if plaintext, err = cipher.DecryptMessage(ctx, msg); err != nil {
			return nil, fmt.Errorf("decrypt prekey message: %w", err)
		}
	case "msg":
		msg, err := protocol.NewSignalMessageFromBytes(content, serializer.SignalMessage)
		if err != nil {
			return nil, fmt.Errorf("parse message: %w", err)
		}
		if plaintext, err = cipher.Decrypt(ctx, msg); err != nil {
			return nil, fmt.Errorf("decrypt message: %w", err)
		}
	default:
		return nil, fmt.Errorf("unsupported enc type %q", encType)
	}
	plaintext, err := unpad(plaintext)
	if err != nil {
		return nil, err
	}
	var msg waE2E.Message
	if err := proto.Unmarshal(plaintext, &msg); err != nil {
		return nil, fmt.Errorf("unmarshal message: %w", err)
	}
	return &msg, nil
}

// messageText is a text message's text, or "" for any other kind.
func messageText(msg *waE2E.Message) string {
	if text := msg.GetConversation(); text != "" {
		return text
	}
	return msg.GetExtendedTextMessage().GetText()
}

// corruptMAC flips a bit of the MAC (the last 8 bytes of a SignalMessage) so
// that the recipient's libsignal rejects it in its real MAC check. In a
// prekey message the SignalMessage is nested and the outer last byte belongs
// to another field, so the inner message is corrupted and the outer rebuilt.
func corruptMAC(ciphertext protocol.CiphertextMessage) ([]byte, error) {
	raw := bytes.Clone(ciphertext.Serialize())
	switch ciphertext.Type() {
	case protocol.WHISPER_TYPE:
		raw[len(raw)-1] ^= 0x01
		return raw, nil
	case protocol.PREKEY_TYPE:
		outer, err := serializer.PreKeySignalMessage.Deserialize(raw)
		if err != nil {
			return nil, fmt.Errorf("parse prekey message: %w", err)
		}
		outer.Message = bytes.Clone(outer.Message)
		outer.Message[len(outer.Message)-1] ^= 0x01
		return serializer.PreKeySignalMessage.Serialize(outer), nil
	default:
		return nil, fmt.Errorf("unexpected ciphertext type %d", ciphertext.Type())
	}
}

func encType(ciphertext protocol.CiphertextMessage) string {
	if ciphertext.Type() == protocol.PREKEY_TYPE {
		return "pkmsg"
	}
	return "msg"
}

// takeBundle builds dev's prekey bundle from its uploaded keys, consuming one
// one-time prekey as WhatsApp does.
func (s *Server) takeBundle(dev *device) (*prekey.Bundle, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(dev.preKeys) == 0 {
		return nil, fmt.Errorf("device %s has no uploaded prekeys left", dev.jid)
	}
	pk := dev.preKeys[0]
	dev.preKeys = dev.preKeys[1:]
	spk := dev.signedPreKey
	return prekey.NewBundle(dev.registrationID, uint32(dev.jid.Device),
		optional.NewOptionalUint32(pk.KeyID), spk.KeyID,
		ecc.NewDjbECPublicKey(*pk.Pub), ecc.NewDjbECPublicKey(*spk.Pub), *spk.Signature,
		identity.NewKey(ecc.NewDjbECPublicKey(dev.identityKey))), nil
}

func preKeyNode(tag string, id uint32, pub *[32]byte, sig *[64]byte) waBinary.Node {
	var idBytes [4]byte
	binary.BigEndian.PutUint32(idBytes[:], id)
	children := []waBinary.Node{
		{Tag: "id", Content: idBytes[1:]},
		{Tag: "value", Content: pub[:]},
	}
	if sig != nil {
		children = append(children, waBinary.Node{Tag: "signature", Content: sig[:]})
	}
	return waBinary.Node{Tag: tag, Content: children}
}

// pad is whatsmeow's message padding (message.go padMessage): 1-15 bytes,
// each holding the pad length.
func pad(plaintext []byte) []byte {
	n := randomBytes(1)[0] & 0xf
	if n == 0 {
		n = 0xf
	}
	return append(plaintext, bytes.Repeat([]byte{n}, int(n))...)
}

func unpad(plaintext []byte) ([]byte, error) {
	if len(plaintext) == 0 {
		return nil, errors.New("plaintext is empty")
	}
	n := int(plaintext[len(plaintext)-1])
	if n == 0 || n > len(plaintext) || !bytes.HasSuffix(plaintext, bytes.Repeat([]byte{byte(n)}, n)) {
		return nil, errors.New("plaintext has invalid padding")
	}
	return plaintext[:len(plaintext)-n], nil
}

// numberOf validates a phone number as used in JIDs and the control API.
func numberOf(s string) (string, error) {
	s = strings.TrimPrefix(s, "+")
	if len(s) < 5 || len(s) > 20 || strings.Trim(s, "0123456789") != "" || s[0] == '0' {
		return "", fmt.Errorf("%q is not a phone number in international format without +", s)
	}
	return s, nil
}
