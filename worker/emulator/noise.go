package emulator

import (
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"go.mau.fi/libsignal/ecc"
	"go.mau.fi/whatsmeow/proto/waCert"
	"go.mau.fi/whatsmeow/socket"
	"go.mau.fi/whatsmeow/util/gcmutil"
	"go.mau.fi/whatsmeow/util/keys"
	"google.golang.org/protobuf/proto"
)

// processRootKey is shared by every Server in a process because whatsmeow
// keeps the trusted root in one package variable (whatsmeow.WACertPubKey):
// two emulators with different roots in one test binary would make clients
// of the first fail their handshake, and rewriting the variable while other
// clients reconnect is a data race.
var processRootKey = sync.OnceValue(keys.NewKeyPair)

// intermediateSerial is arbitrary; whatsmeow only checks that the leaf names
// it as issuer and that the intermediate's own issuer serial is 0
// (handshake.go:27, WACertIssuerSerial).
const intermediateSerial = 7

// buildCertChain returns the marshalled waCert.CertChain that proves the
// server's static noise key: root -> intermediate -> leaf(static).
func buildCertChain(root *keys.KeyPair, static [32]byte) ([]byte, error) {
	intermediate := keys.NewKeyPair()
	now := uint64(time.Now().Unix())
	notAfter := now + 10*365*24*3600
	interDetails, err := proto.Marshal(&waCert.CertChain_NoiseCertificate_Details{
		Serial:       proto.Uint32(intermediateSerial),
		IssuerSerial: proto.Uint32(0),
		Key:          intermediate.Pub[:],
		NotBefore:    proto.Uint64(now),
		NotAfter:     proto.Uint64(notAfter),
	})
	if err != nil {
		return nil, fmt.Errorf("marshal intermediate certificate: %w", err)
	}
	leafDetails, err := proto.Marshal(&waCert.CertChain_NoiseCertificate_Details{
		Serial:       proto.Uint32(intermediateSerial + 1),
		IssuerSerial: proto.Uint32(intermediateSerial),
		Key:          static[:],
		NotBefore:    proto.Uint64(now),
		NotAfter:     proto.Uint64(notAfter),
	})
	if err != nil {
		return nil, fmt.Errorf("marshal leaf certificate: %w", err)
	}
	interSig := ecc.CalculateSignature(ecc.NewDjbECPrivateKey(*root.Priv), interDetails)
	leafSig := ecc.CalculateSignature(ecc.NewDjbECPrivateKey(*intermediate.Priv), leafDetails)
	chain, err := proto.Marshal(&waCert.CertChain{
		Intermediate: &waCert.CertChain_NoiseCertificate{Details: interDetails, Signature: interSig[:]},
		Leaf:         &waCert.CertChain_NoiseCertificate{Details: leafDetails, Signature: leafSig[:]},
	})
	if err != nil {
		return nil, fmt.Errorf("marshal certificate chain: %w", err)
	}
	return chain, nil
}

// handshakeState mirrors whatsmeow's client-only socket.NoiseHandshake
// (noisehandshake.go) step for step, so that both sides hash, mix and count
// identically; it cannot be reused because its salt is unexported and the
// final key direction is fixed to the client's.
type handshakeState struct {
	hash    []byte
	salt    []byte
	key     cipher.AEAD
	counter uint32
}

func newHandshakeState(header []byte) (*handshakeState, error) {
	start := []byte(socket.NoiseStartPattern) // exactly 32 bytes, used as-is
	key, err := gcmutil.Prepare(start)
	if err != nil {
		return nil, fmt.Errorf("prepare initial noise cipher: %w", err)
	}
	hs := &handshakeState{hash: start, salt: start, key: key}
	hs.authenticate(header)
	return hs, nil
}

func (hs *handshakeState) authenticate(data []byte) {
	h := sha256.New()
	h.Write(hs.hash)
	h.Write(data)
	hs.hash = h.Sum(nil)
}

func (hs *handshakeState) encrypt(plaintext []byte) []byte {
	ciphertext := hs.key.Seal(nil, frameIV(hs.counter), plaintext, hs.hash)
	hs.counter++
	hs.authenticate(ciphertext)
	return ciphertext
}

func (hs *handshakeState) decrypt(ciphertext []byte) ([]byte, error) {
	plaintext, err := hs.key.Open(nil, frameIV(hs.counter), ciphertext, hs.hash)
	hs.counter++
	if err != nil {
		return nil, err
	}
	hs.authenticate(ciphertext)
	return plaintext, nil
}

func (hs *handshakeState) mixSharedSecret(priv, pub *[32]byte) error {
	privKey, err := ecdh.X25519().NewPrivateKey(priv[:])
	if err != nil {
		return fmt.Errorf("load x25519 private key: %w", err)
	}
	pubKey, err := ecdh.X25519().NewPublicKey(pub[:])
	if err != nil {
		return fmt.Errorf("load x25519 public key: %w", err)
	}
	secret, err := privKey.ECDH(pubKey)
	if err != nil {
		return fmt.Errorf("x25519: %w", err)
	}
	write, read, err := expandKeys(hs.salt, secret)
	if err != nil {
		return err
	}
	hs.counter = 0
	hs.salt = write
	hs.key, err = gcmutil.Prepare(read)
	if err != nil {
		return fmt.Errorf("prepare mixed noise cipher: %w", err)
	}
	return nil
}

// finish returns the transport ciphers from the server's point of view: the
// client writes with the first derived key, so the server reads with it.
func (hs *handshakeState) finish() (read, write cipher.AEAD, err error) {
	clientWrite, clientRead, err := expandKeys(hs.salt, nil)
	if err != nil {
		return nil, nil, err
	}
	if read, err = gcmutil.Prepare(clientWrite); err != nil {
		return nil, nil, fmt.Errorf("prepare read cipher: %w", err)
	}
	if write, err = gcmutil.Prepare(clientRead); err != nil {
		return nil, nil, fmt.Errorf("prepare write cipher: %w", err)
	}
	return read, write, nil
}

func expandKeys(salt, secret []byte) (first, second []byte, err error) {
	out, err := hkdf.Key(sha256.New, secret, salt, "", 64)
	if err != nil {
		return nil, nil, fmt.Errorf("hkdf: %w", err)
	}
	return out[:32], out[32:], nil
}

// frameIV is the nonce layout of noisesocket.go: 8 zero bytes, then the
// big-endian frame counter.
func frameIV(counter uint32) []byte {
	iv := make([]byte, 12)
	binary.BigEndian.PutUint32(iv[8:], counter)
	return iv
}
