package emulator

// Pairing by phone code, the server and phone halves of whatsmeow's
// pair-code.go:
//
//  1. The companion (still on the pairing connection that got QR refs) sends
//     <iq xmlns=md type=set><link_code_companion_reg stage=companion_hello
//     jid=PHONE> with its ephemeral key wrapped under the 8-character code it
//     shows; the server answers <link_code_pairing_ref> (pair-code.go:126).
//  2. The user types the code on the phone (POST /control/pair-code): the
//     phone unwraps the companion's ephemeral key with it, wraps its own and
//     sends <notification type=link_code_companion_reg><link_code_companion_reg
//     stage=primary_hello> with the ref and its identity key (pair-code.go:150-183).
//  3. The companion derives the ephemeral secret and answers with
//     stage=companion_finish: a key bundle (its identity, the phone's identity,
//     adv randomness) encrypted under that secret (pair-code.go:185-243).
//  4. The phone decrypts the bundle. A wrong code shows here: the two sides
//     unwrapped different keys, so their secrets differ and AES-GCM rejects
//     the bundle. Otherwise both derive the same adv secret, and the rest is
//     the QR path: pair-success authenticated with it, pair-device-sign, 515.

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	waBinary "go.mau.fi/whatsmeow/binary"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/util/hkdfutil"
	"go.mau.fi/whatsmeow/util/keys"
)

// linkCodeAlphabet is whatsmeow's base32 alphabet for codes (pair-code.go:49):
// no 0, I, O or U.
const linkCodeAlphabet = "123456789ABCDEFGHJKLMNPQRSTVWXYZ"

// linkCodeIterations is the PBKDF2-SHA256 work factor for the code (pair-code.go:62).
const linkCodeIterations = 2 << 16

// wrappedKeyLen is salt (32) ‖ AES-CTR IV (16) ‖ encrypted X25519 public key (32).
const wrappedKeyLen = 32 + 16 + 32

// displayPattern is the "Browser (OS)" form PairPhone's documentation says
// WhatsApp validates (it answers 400 otherwise); the exact list of accepted
// names is unknown, so only the form is checked.
var displayPattern = regexp.MustCompile(`^[^()]+ \([^()]+\)$`)

// errWrongCode is a code that does not match the one the companion shows.
var errWrongCode = errors.New("the code does not match the one shown on the linked device")

// codeRequest is a companion's pending request for a pairing code. Guarded
// by Server.mu.
type codeRequest struct {
	number           string
	ref              []byte
	wrappedEphemeral []byte
	// finish is set while the phone, with a code typed, waits for the
	// companion's companion_finish iq; the read loop hands the iq over on it.
	finish chan *waBinary.Node
}

// onOfferLocked reports whether the pairing connection c is still unclaimed:
// a scan or code pairing that links it removes its QR refs.
func (s *Server) onOfferLocked(c *conn) bool {
	return c.reg != nil && len(c.reg.refs) > 0 && s.pairing[c.reg.refs[0]] == c
}

// handleLinkCode handles <link_code_companion_reg> iqs of a pairing connection.
func (c *conn) handleLinkCode(iq *waBinary.Node) error {
	reg := iq.GetChildByTag("link_code_companion_reg")
	switch stage := reg.AttrGetter().OptionalString("stage"); stage {
	case "companion_hello":
		if err := c.companionHello(iq, reg); err != nil {
			_ = c.send(iqError(iq, 400, "bad-request"))
			return fmt.Errorf("companion_hello: %w", err)
		}
		return nil
	case "companion_finish":
		return c.companionFinish(iq)
	default:
		what := "md set link_code_companion_reg stage=" + stage + " (before login)"
		c.srv.recordUnknownIQ(what)
		c.log.Error("UNKNOWN IQ: the emulator does not implement this query", "iq", what, "node", iq.XMLString())
		return c.send(iqError(iq, 501, "feature-not-implemented"))
	}
}

// companionHello records the companion's request for a code for a phone
// number and answers the pairing ref.
func (c *conn) companionHello(iq *waBinary.Node, reg waBinary.Node) error {
	jid, ok := reg.Attrs["jid"].(types.JID)
	if !ok || jid.Server != types.DefaultUserServer || jid.Device != 0 {
		return fmt.Errorf("jid attribute %v is not a phone number's user JID", reg.Attrs["jid"])
	}
	number, err := numberOf(jid.User)
	if err != nil {
		return err
	}
	wrapped, _ := reg.GetChildByTag("link_code_pairing_wrapped_companion_ephemeral_pub").Content.([]byte)
	if len(wrapped) != wrappedKeyLen {
		return fmt.Errorf("wrapped companion ephemeral key has %d bytes, want %d", len(wrapped), wrappedKeyLen)
	}
	authKey, _ := reg.GetChildByTag("companion_server_auth_key_pub").Content.([]byte)
	if !bytes.Equal(authKey, c.noiseKey[:]) {
		return errors.New("companion_server_auth_key_pub is not the connection's noise key")
	}
	platformID := nodeText(reg.GetChildByTag("companion_platform_id"))
	if id, err := strconv.Atoi(platformID); err != nil || id < 0 || id > 9 {
		return fmt.Errorf("companion_platform_id %q is not a PairClientType", platformID)
	}
	display := nodeText(reg.GetChildByTag("companion_platform_display"))
	if !displayPattern.MatchString(display) {
		return fmt.Errorf("companion_platform_display %q is not of the form \"Browser (OS)\"", display)
	}
	if _, ok := reg.GetOptionalChildByTag("link_code_pairing_nonce"); !ok {
		return errors.New("link_code_pairing_nonce is missing")
	}

	ref := []byte(base64.RawURLEncoding.EncodeToString(randomBytes(24)))
	s := c.srv
	s.mu.Lock()
	if !s.onOfferLocked(c) {
		s.mu.Unlock()
		return errors.New("the connection is not waiting to be paired")
	}
	if old := c.code; old != nil && s.codePairing[old.number] == c {
		delete(s.codePairing, old.number)
	}
	if other := s.codePairing[number]; other != nil && other != c {
		// One phone enters one code: the newest request for the number is
		// the one a typed code goes to.
		c.log.Info("a newer client asks for a pairing code for the same phone", "phone", number)
	}
	c.code = &codeRequest{number: number, ref: ref, wrappedEphemeral: bytes.Clone(wrapped)}
	s.codePairing[number] = c
	s.mu.Unlock()
	c.log.Info("client asked for a pairing code", "phone", number, "display", display)
	return c.send(result(iq, waBinary.Node{Tag: "link_code_companion_reg", Content: []waBinary.Node{
		{Tag: "link_code_pairing_ref", Content: ref},
	}}))
}

// companionFinish hands the companion's key bundle to the phone waiting for
// it, which answers the iq once it has checked the bundle.
func (c *conn) companionFinish(iq *waBinary.Node) error {
	s := c.srv
	s.mu.Lock()
	handed := false
	if c.code != nil && c.code.finish != nil {
		select {
		case c.code.finish <- iq:
			handed = true
		default:
		}
	}
	s.mu.Unlock()
	if !handed {
		_ = c.send(iqError(iq, 404, "item-not-found"))
		return errors.New("companion_finish while no phone is entering a code for this client")
	}
	return nil
}

// normalizeLinkCode accepts the code as shown ("ABCD-EFGH") or without the
// dash, in either case.
func normalizeLinkCode(code string) (string, error) {
	typed := strings.ToUpper(strings.ReplaceAll(strings.TrimSpace(code), "-", ""))
	if len(typed) != 8 || strings.Trim(typed, linkCodeAlphabet) != "" {
		return "", fmt.Errorf("%w: code %q is not 8 characters of %s (a dash in the middle is optional)", errBadRequest, code, linkCodeAlphabet)
	}
	return typed, nil
}

// pairCode is the phone's user typing code for number: it completes the
// code pairing of the client that asked for a code for number and returns
// the new companion's JID.
func (s *Server) pairCode(ctx context.Context, number, code string) (types.JID, error) {
	typed, err := normalizeLinkCode(code)
	if err != nil {
		return types.EmptyJID, err
	}
	s.mu.Lock()
	c := s.codePairing[number]
	if c == nil || c.code == nil {
		s.mu.Unlock()
		return types.EmptyJID, fmt.Errorf("no connected client asked for a pairing code for phone %s: %w", number, errNotFound)
	}
	req, reg := c.code, c.reg
	if req.finish != nil {
		s.mu.Unlock()
		return types.EmptyJID, errors.New("a code is already being entered for this client")
	}
	finish := make(chan *waBinary.Node, 1)
	req.finish = finish
	identity := s.phoneLocked(number).identity
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		req.finish = nil
		s.mu.Unlock()
		select {
		case iq := <-finish: // arrived too late to be read
			_ = c.send(iqError(iq, 408, "request-timeout"))
		default:
		}
	}()

	companionEphemeral, err := unwrapLinkKey(typed, req.wrappedEphemeral)
	if err != nil {
		return types.EmptyJID, err
	}
	ephemeral := keys.NewKeyPair()
	wrappedPrimary, err := wrapLinkKey(typed, ephemeral.Pub[:])
	if err != nil {
		return types.EmptyJID, err
	}
	err = c.send(waBinary.Node{
		Tag: "notification",
		Attrs: waBinary.Attrs{
			"from": types.ServerJID,
			"type": "link_code_companion_reg",
			"id":   c.newID(),
			"t":    fmt.Sprint(time.Now().Unix()),
		},
		Content: []waBinary.Node{{
			Tag:   "link_code_companion_reg",
			Attrs: waBinary.Attrs{"stage": "primary_hello"},
			Content: []waBinary.Node{
				{Tag: "link_code_pairing_ref", Content: req.ref},
				{Tag: "link_code_pairing_wrapped_primary_ephemeral_pub", Content: wrappedPrimary},
				{Tag: "primary_identity_pub", Content: identity.Pub[:]},
			},
		}},
	})
	if err != nil {
		return types.EmptyJID, fmt.Errorf("primary_hello: %w", err)
	}

	var iq *waBinary.Node
	waitCtx, cancel := context.WithTimeout(ctx, pairDeviceTimeout)
	defer cancel()
	select {
	case iq = <-finish:
	case <-waitCtx.Done():
		return types.EmptyJID, fmt.Errorf("waiting for the client's companion_finish: %w", waitCtx.Err())
	case <-c.done:
		return types.EmptyJID, errors.New("client disconnected before companion_finish")
	}
	advSecret, err := openKeyBundle(iq.GetChildByTag("link_code_companion_reg"), req.ref, reg.identityKey, identity, ephemeral, companionEphemeral)
	if err != nil {
		_ = c.send(iqError(iq, 400, "bad-request"))
		return types.EmptyJID, err
	}
	if err := c.send(result(iq)); err != nil {
		return types.EmptyJID, fmt.Errorf("answer companion_finish: %w", err)
	}

	s.mu.Lock()
	if !s.onOfferLocked(c) || s.codePairing[number] != c {
		s.mu.Unlock()
		return types.EmptyJID, errors.New("the client was linked otherwise or disconnected while the code was entered")
	}
	ph, dev := s.claimLocked(c, number)
	s.mu.Unlock()
	return s.completePairing(ctx, c, ph, dev, advSecret)
}

// openKeyBundle checks the companion_finish like the phone: it decrypts the
// key bundle with the ephemeral secret (pair-code.go:203-212), checks that
// it names both identities, and derives the adv secret (pair-code.go:215-222).
func openKeyBundle(finish waBinary.Node, ref []byte, companionIdentity [32]byte, identity, ephemeral *keys.KeyPair, companionEphemeral []byte) ([]byte, error) {
	gotRef, _ := finish.GetChildByTag("link_code_pairing_ref").Content.([]byte)
	if !bytes.Equal(gotRef, ref) {
		return nil, errors.New("companion_finish names another pairing ref")
	}
	gotIdentity, _ := finish.GetChildByTag("companion_identity_public").Content.([]byte)
	if !bytes.Equal(gotIdentity, companionIdentity[:]) {
		return nil, errors.New("companion_finish identity is not the one the client registered with")
	}
	wrapped, _ := finish.GetChildByTag("link_code_pairing_wrapped_key_bundle").Content.([]byte)
	if len(wrapped) < 32+12+16 {
		return nil, fmt.Errorf("wrapped key bundle has only %d bytes", len(wrapped))
	}
	shared, err := x25519(ephemeral.Priv[:], companionEphemeral)
	if err != nil {
		// A wrong code can unwrap to a low-order point.
		return nil, fmt.Errorf("%w (ephemeral agreement: %v)", errWrongCode, err)
	}
	block, err := aes.NewCipher(hkdfutil.SHA256(shared, wrapped[:32], []byte("link_code_pairing_key_bundle_encryption_key"), 32))
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	bundle, err := gcm.Open(nil, wrapped[32:44], wrapped[44:], nil)
	if err != nil {
		return nil, fmt.Errorf("%w: its key bundle does not decrypt", errWrongCode)
	}
	if len(bundle) != 96 || !bytes.Equal(bundle[:32], companionIdentity[:]) || !bytes.Equal(bundle[32:64], identity.Pub[:]) {
		return nil, errors.New("key bundle does not name the companion's and the phone's identities")
	}
	identityShared, err := x25519(identity.Priv[:], companionIdentity[:])
	if err != nil {
		return nil, fmt.Errorf("identity agreement: %w", err)
	}
	return hkdfutil.SHA256(concat(shared, identityShared, bundle[64:]), nil, []byte("adv_secret"), 32), nil
}

// linkCodeCipher is AES-256-CTR under PBKDF2-SHA256(code, salt) (pair-code.go:62-65).
func linkCodeCipher(code string, salt, iv []byte) (cipher.Stream, error) {
	key, err := pbkdf2.Key(sha256.New, code, salt, linkCodeIterations, 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewCTR(block, iv), nil
}

func unwrapLinkKey(code string, wrapped []byte) ([]byte, error) {
	stream, err := linkCodeCipher(code, wrapped[:32], wrapped[32:48])
	if err != nil {
		return nil, err
	}
	pub := make([]byte, 32)
	stream.XORKeyStream(pub, wrapped[48:80])
	return pub, nil
}

func wrapLinkKey(code string, pub []byte) ([]byte, error) {
	salt, iv := randomBytes(32), randomBytes(16)
	stream, err := linkCodeCipher(code, salt, iv)
	if err != nil {
		return nil, err
	}
	encrypted := make([]byte, 32)
	stream.XORKeyStream(encrypted, pub)
	return concat(salt, iv, encrypted), nil
}

func x25519(priv, pub []byte) ([]byte, error) {
	key, err := ecdh.X25519().NewPrivateKey(priv)
	if err != nil {
		return nil, err
	}
	peer, err := ecdh.X25519().NewPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return key.ECDH(peer)
}

// nodeText is a node's text content: the binary encoding turns short
// strings (digits, tokens) into strings and longer ones into bytes.
func nodeText(node waBinary.Node) string {
	switch v := node.Content.(type) {
	case string:
		return v
	case []byte:
		return string(v)
	}
	return ""
}
