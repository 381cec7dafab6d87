package emulator

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.mau.fi/libsignal/ecc"
	"go.mau.fi/whatsmeow"
	waBinary "go.mau.fi/whatsmeow/binary"
	"go.mau.fi/whatsmeow/proto/waAdv"
	"go.mau.fi/whatsmeow/proto/waCompanionReg"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"
	"go.mau.fi/whatsmeow/util/keys"
	"google.golang.org/protobuf/proto"

	"github.com/wa-sidecar/wa-sidecar/worker/emulator/emuctl"
)

// phone is a WhatsApp account's primary device: it owns the account identity
// key that signs every companion it links, and that key stays the same
// across pairings.
type phone struct {
	number     string
	identity   *keys.KeyPair
	lidUser    string
	lastDevice uint16
	devices    map[uint16]*device
	// deliveries is every message any of the phone's devices sent, resends
	// of one ID included, in arrival order.
	deliveries []Delivery
	// refusals are the errors armed for the next sends.
	refusals []refusal
}

// device is one linked companion (a whatsmeow client) as the server knows it.
// All fields are guarded by Server.mu.
type device struct {
	phone          *phone
	jid, lid       types.JID
	noiseKey       [32]byte
	identityKey    [32]byte
	registrationID uint32
	signedPreKey   *keys.PreKey // public half and signature only
	preKeys        []*keys.PreKey
	removed        bool
	rejectLogin    bool
	ban            *tempBan // a temporary ban armed or in force, if any
	conn           *conn    // the logged-in connection, if any
	// props is what the companion announced of itself when it registered
	// (nil if it sent none that parsed): its platform and the history it
	// asks the phone for.
	props       *waCompanionReg.DeviceProps
	historySent bool
}

// registration is what a pairing connection announced in its client payload.
type registration struct {
	identityKey    [32]byte
	registrationID uint32
	signedPreKey   *keys.PreKey
	refs           []string
	props          *waCompanionReg.DeviceProps
}

// Delivery is a message a linked device sent, as its recipient decrypted it.
type Delivery = emuctl.Delivery

var (
	errNotFound   = errors.New("not found")
	errBadRequest = errors.New("bad request")
)

// pairDeviceTimeout bounds how long the fake phone waits for the client's
// pair-device-sign after pair-success.
const pairDeviceTimeout = 15 * time.Second

// qrRefCount matches what WhatsApp offers: the client shows one ref after the
// other, 60 s for the first and 20 s for the rest (qrchan.go:80).
const qrRefCount = 6

// startPairing answers a connection without credentials with pair-device refs.
func (c *conn) startPairing() error {
	data := c.payload.GetDevicePairingData()
	if len(data.GetERegid()) != 4 || len(data.GetEIdent()) != 32 || len(data.GetESkeyID()) != 3 ||
		len(data.GetESkeyVal()) != 32 || len(data.GetESkeySig()) != 64 {
		return errors.New("registration payload has malformed keys")
	}
	reg := &registration{
		identityKey:    [32]byte(data.GetEIdent()),
		registrationID: binary.BigEndian.Uint32(data.GetERegid()),
		signedPreKey: &keys.PreKey{
			KeyPair:   keys.KeyPair{Pub: (*[32]byte)(bytes.Clone(data.GetESkeyVal()))},
			KeyID:     binary.BigEndian.Uint32(append([]byte{0}, data.GetESkeyID()...)),
			Signature: (*[64]byte)(bytes.Clone(data.GetESkeySig())),
		},
	}
	if raw := data.GetDeviceProps(); raw != nil {
		var props waCompanionReg.DeviceProps
		if err := proto.Unmarshal(raw, &props); err != nil {
			c.log.Warn("registration payload has device props that do not parse", "err", err)
		} else {
			reg.props = &props
		}
	}
	refNodes := make([]waBinary.Node, qrRefCount)
	for i := range refNodes {
		ref := "2@" + base64.StdEncoding.EncodeToString(randomBytes(24))
		reg.refs = append(reg.refs, ref)
		refNodes[i] = waBinary.Node{Tag: "ref", Content: []byte(ref)}
	}
	c.srv.mu.Lock()
	c.srv.registrations++
	c.reg = reg
	for _, ref := range reg.refs {
		c.srv.pairing[ref] = c
	}
	c.srv.mu.Unlock()
	iq := serverIQ("set", "md", waBinary.Node{Tag: "pair-device", Content: refNodes})
	iq.Attrs["id"] = c.newID()
	c.log.Info("offering QR refs to a new client")
	return c.send(iq)
}

// scan is the fake phone scanning a QR code: it links the connection that
// offered the code as a new companion of number and returns its JID.
func (s *Server) scan(ctx context.Context, qr, number string) (types.JID, error) {
	parts := strings.Split(qr, ",")
	if len(parts) != 4 {
		return types.EmptyJID, fmt.Errorf("%w: QR code must have 4 comma-separated parts, got %d", errBadRequest, len(parts))
	}
	ref := parts[0]
	var decoded [3][]byte
	for i, part := range parts[1:] {
		var err error
		if decoded[i], err = base64.StdEncoding.DecodeString(part); err != nil {
			return types.EmptyJID, fmt.Errorf("%w: QR code part %d is not base64", errBadRequest, i+2)
		}
	}
	noiseKey, identityKey, advSecret := decoded[0], decoded[1], decoded[2]

	s.mu.Lock()
	c, ok := s.pairing[ref]
	if !ok {
		s.mu.Unlock()
		return types.EmptyJID, fmt.Errorf("no connected client offers QR ref %q: %w", ref, errNotFound)
	}
	if !bytes.Equal(noiseKey, c.noiseKey[:]) || !bytes.Equal(identityKey, c.reg.identityKey[:]) {
		s.mu.Unlock()
		return types.EmptyJID, errors.New("QR code keys do not match the client that offered the ref")
	}
	ph, dev := s.claimLocked(c, number)
	s.mu.Unlock()
	return s.completePairing(ctx, c, ph, dev, advSecret)
}

// claimLocked takes the pairing connection c off offer (its QR refs and any
// pending pairing code) so that no second scan or code links it again, and
// allocates the new companion's device id on number's phone. The caller
// holds s.mu and has checked that c is still on offer.
func (s *Server) claimLocked(c *conn, number string) (*phone, *device) {
	reg := c.reg
	for _, r := range reg.refs {
		delete(s.pairing, r)
	}
	if c.code != nil && s.codePairing[c.code.number] == c {
		delete(s.codePairing, c.code.number)
	}
	ph := s.phoneLocked(number)
	ph.lastDevice++
	dev := &device{
		phone:          ph,
		jid:            types.JID{User: number, Device: ph.lastDevice, Server: types.DefaultUserServer},
		lid:            types.JID{User: ph.lidUser, Device: ph.lastDevice, Server: types.HiddenUserServer},
		noiseKey:       c.noiseKey,
		identityKey:    reg.identityKey,
		registrationID: reg.registrationID,
		signedPreKey:   reg.signedPreKey,
		props:          reg.props,
	}
	return ph, dev
}

// completePairing is what the phone does once it trusts the companion (QR
// scanned, or pairing code checked): it signs the companion's identity,
// authenticated with the shared advSecret, sends pair-success, checks the
// countersignature and asks the client to restart into its first login.
func (s *Server) completePairing(ctx context.Context, c *conn, ph *phone, dev *device, advSecret []byte) (types.JID, error) {
	container, keyIndex, err := ph.signCompanion(dev, advSecret)
	if err != nil {
		return types.EmptyJID, err
	}
	pairSuccess := serverIQ("set", "md", waBinary.Node{Tag: "pair-success", Content: []waBinary.Node{
		{Tag: "device-identity", Content: container},
		{Tag: "platform", Attrs: waBinary.Attrs{"name": "android"}},
		// pair.go:93-94 type-asserts these attributes to types.JID.
		{Tag: "device", Attrs: waBinary.Attrs{"jid": dev.jid, "lid": dev.lid}},
		{Tag: "biz"},
	}})
	ctx, cancel := context.WithTimeout(ctx, pairDeviceTimeout)
	defer cancel()
	resp, err := c.request(ctx, pairSuccess)
	if err != nil {
		return types.EmptyJID, fmt.Errorf("pair-success: %w", err)
	}
	if err := ph.verifyCompanionSignature(resp, dev, keyIndex); err != nil {
		return types.EmptyJID, err
	}

	s.mu.Lock()
	ph.devices[dev.jid.Device] = dev
	s.mu.Unlock()
	s.log.Info("phone linked a companion", "phone", ph.number, "jid", dev.jid.String())
	// 515 tells the client to reconnect and log in with its new identity.
	if err := c.terminate(waBinary.Node{Tag: "stream:error", Attrs: waBinary.Attrs{"code": "515"}}); err != nil {
		s.log.Warn("could not ask the client to restart after pairing", "jid", dev.jid.String(), "err", err)
	}
	return dev.jid, nil
}

// phoneLocked returns the phone for number, creating it on first use.
func (s *Server) phoneLocked(number string) *phone {
	if ph, ok := s.phones[number]; ok {
		return ph
	}
	// LIDs are opaque 15-digit numbers unrelated to the phone number.
	lid := binary.BigEndian.Uint64(randomBytes(8))%9e14 + 1e14
	ph := &phone{
		number:   number,
		identity: keys.NewKeyPair(),
		lidUser:  fmt.Sprint(lid),
		devices:  make(map[uint16]*device),
	}
	s.phones[number] = ph
	return ph
}

// signCompanion builds the ADVSignedDeviceIdentityHMAC a real phone sends in
// pair-success (pair.go:118-129 and :228-243 verify it).
func (ph *phone) signCompanion(dev *device, advSecret []byte) ([]byte, uint32, error) {
	keyIndex := uint32(dev.jid.Device)
	details, err := proto.Marshal(&waAdv.ADVDeviceIdentity{
		RawID:     proto.Uint32(binary.BigEndian.Uint32(randomBytes(4))),
		Timestamp: proto.Uint64(uint64(time.Now().Unix())),
		KeyIndex:  proto.Uint32(keyIndex),
	})
	if err != nil {
		return nil, 0, fmt.Errorf("marshal device identity: %w", err)
	}
	msg := concat(whatsmeow.AdvAccountSignaturePrefix, details, dev.identityKey[:])
	sig := ecc.CalculateSignature(ecc.NewDjbECPrivateKey(*ph.identity.Priv), msg)
	signed, err := proto.Marshal(&waAdv.ADVSignedDeviceIdentity{
		Details:             details,
		AccountSignatureKey: ph.identity.Pub[:],
		AccountSignature:    sig[:],
	})
	if err != nil {
		return nil, 0, fmt.Errorf("marshal signed device identity: %w", err)
	}
	mac := hmac.New(sha256.New, advSecret)
	mac.Write(signed)
	container, err := proto.Marshal(&waAdv.ADVSignedDeviceIdentityHMAC{Details: signed, HMAC: mac.Sum(nil)})
	if err != nil {
		return nil, 0, fmt.Errorf("marshal device identity container: %w", err)
	}
	return container, keyIndex, nil
}

// verifyCompanionSignature checks the client's pair-device-sign like a real
// phone: the companion must countersign the details with its identity key.
func (ph *phone) verifyCompanionSignature(resp *waBinary.Node, dev *device, keyIndex uint32) error {
	if typ, _ := resp.Attrs["type"].(string); typ != "result" {
		errNode := resp.GetChildByTag("error")
		return fmt.Errorf("client refused pairing: code %v, %v", errNode.Attrs["code"], errNode.Attrs["text"])
	}
	identityNode := resp.GetChildByTag("pair-device-sign", "device-identity")
	raw, ok := identityNode.Content.([]byte)
	if !ok {
		return errors.New("pair-device-sign has no device-identity")
	}
	if got := identityNode.AttrGetter().OptionalInt("key-index"); got != int(keyIndex) {
		return fmt.Errorf("pair-device-sign has key-index %d, want %d", got, keyIndex)
	}
	var signed waAdv.ADVSignedDeviceIdentity
	if err := proto.Unmarshal(raw, &signed); err != nil {
		return fmt.Errorf("unmarshal pair-device-sign identity: %w", err)
	}
	if len(signed.GetDeviceSignature()) != 64 {
		return errors.New("pair-device-sign lacks a device signature")
	}
	msg := concat(whatsmeow.AdvDeviceSignaturePrefix, signed.GetDetails(), dev.identityKey[:], ph.identity.Pub[:])
	if !ecc.VerifySignature(ecc.NewDjbECPublicKey(dev.identityKey), msg, [64]byte(signed.GetDeviceSignature())) {
		return errors.New("pair-device-sign device signature does not verify")
	}
	return nil
}

// tempBan is a temporary ban through the control API. It is armed until
// the device's next login, which starts it: that login and every one until
// until get <failure reason=402>; the first login after it succeeds and
// clears the ban. The device stays linked throughout.
type tempBan struct {
	code     int
	duration time.Duration
	until    time.Time // zero while armed
}

// failure is the <failure reason=402 code expire/> that whatsmeow turns into
// events.TemporaryBan{Code: code, Expire: expire seconds}
// (connectionevents.go handleConnectFailure); expire is what remains of the
// ban, rounded up to whole seconds.
func (b *tempBan) failure(now time.Time) waBinary.Node {
	remaining := b.until.Sub(now)
	expire := int64((remaining + time.Second - 1) / time.Second)
	return waBinary.Node{Tag: "failure", Attrs: waBinary.Attrs{
		"reason":   fmt.Sprint(int(events.ConnectFailureTempBanned)),
		"code":     fmt.Sprint(b.code),
		"expire":   fmt.Sprint(expire),
		"location": "emu",
	}}
}

// login handles a client payload with credentials: <success> for a linked
// device, <failure reason=401> for an unknown, unlinked or rejected one,
// <failure reason=402> for a temporarily banned one.
func (c *conn) login() error {
	number := fmt.Sprint(c.payload.GetUsername())
	id := uint16(c.payload.GetDevice())
	s := c.srv
	s.mu.Lock()
	var dev *device
	if ph, ok := s.phones[number]; ok {
		dev = ph.devices[id]
	}
	reason := ""
	switch {
	case dev == nil:
		reason = "unknown device"
	case dev.removed:
		reason = "device was logged out"
	case dev.noiseKey != c.noiseKey:
		reason = "noise key does not match the linked device"
	case dev.rejectLogin:
		reason = "login rejected through the control API"
		dev.rejectLogin = false
		dev.removed = true
	}
	now := time.Now()
	var banned *waBinary.Node
	if reason == "" && dev.ban != nil {
		if dev.ban.until.IsZero() {
			dev.ban.until = now.Add(dev.ban.duration)
		}
		if now.Before(dev.ban.until) {
			node := dev.ban.failure(now)
			banned = &node
		} else {
			dev.ban = nil
		}
	}
	jid := types.JID{User: number, Device: id, Server: types.DefaultUserServer}
	var old *conn
	if reason == "" && banned == nil {
		// Set before dev.conn publishes c to control requests.
		c.log = c.log.With("jid", jid.String())
		old = dev.conn
		dev.conn = c
		c.device = dev
	}
	s.mu.Unlock()
	if reason != "" {
		c.log.Info("rejecting login", "jid", jid.String(), "reason", reason)
		return c.terminate(waBinary.Node{Tag: "failure", Attrs: waBinary.Attrs{"reason": "401", "location": "emu"}})
	}
	if banned != nil {
		c.log.Info("refusing login of a temporarily banned device", "jid", jid.String(),
			"code", banned.Attrs["code"], "expire_s", banned.Attrs["expire"])
		return c.terminate(*banned)
	}
	if old != nil {
		old.close()
	}
	c.log.Info("device logged in")
	return c.send(waBinary.Node{Tag: "success", Attrs: waBinary.Attrs{
		"t":        fmt.Sprint(time.Now().Unix()),
		"lid":      dev.lid,
		"location": "emu",
	}})
}

func concat(parts ...[]byte) []byte {
	return bytes.Join(parts, nil)
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails since Go 1.24
	return b
}
