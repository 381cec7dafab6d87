package emulator

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"

	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/util/cbcutil"
	"go.mau.fi/whatsmeow/util/hkdfutil"

	"github.com/wa-sidecar/wa-sidecar/worker/emulator/emuctl"
)

// Media is a media message as its recipient received it.
type Media = emuctl.Media

// mediaFields is what the recipient needs of any media message to fetch
// and check its file.
type mediaFields struct {
	kind, mime, filename, caption string
	appInfo                       whatsmeow.MediaType
	directPath                    string
	mediaKey, encSHA256, sha256   []byte
	length                        uint64
}

// mediaOf reads the media part of msg; ok is false for a message without one.
func mediaOf(msg *waE2E.Message) (mediaFields, bool) {
	switch {
	case msg.GetImageMessage() != nil:
		m := msg.GetImageMessage()
		return mediaFields{kind: "image", mime: m.GetMimetype(), caption: m.GetCaption(), appInfo: whatsmeow.MediaImage,
			directPath: m.GetDirectPath(), mediaKey: m.GetMediaKey(), encSHA256: m.GetFileEncSHA256(), sha256: m.GetFileSHA256(), length: m.GetFileLength()}, true
	case msg.GetVideoMessage() != nil:
		m := msg.GetVideoMessage()
		return mediaFields{kind: "video", mime: m.GetMimetype(), caption: m.GetCaption(), appInfo: whatsmeow.MediaVideo,
			directPath: m.GetDirectPath(), mediaKey: m.GetMediaKey(), encSHA256: m.GetFileEncSHA256(), sha256: m.GetFileSHA256(), length: m.GetFileLength()}, true
	case msg.GetAudioMessage() != nil:
		m := msg.GetAudioMessage()
		kind := "audio"
		if m.GetPTT() {
			kind = "voice"
		}
		return mediaFields{kind: kind, mime: m.GetMimetype(), appInfo: whatsmeow.MediaAudio,
			directPath: m.GetDirectPath(), mediaKey: m.GetMediaKey(), encSHA256: m.GetFileEncSHA256(), sha256: m.GetFileSHA256(), length: m.GetFileLength()}, true
	case msg.GetDocumentMessage() != nil:
		m := msg.GetDocumentMessage()
		return mediaFields{kind: "document", mime: m.GetMimetype(), filename: m.GetFileName(), caption: m.GetCaption(), appInfo: whatsmeow.MediaDocument,
			directPath: m.GetDirectPath(), mediaKey: m.GetMediaKey(), encSHA256: m.GetFileEncSHA256(), sha256: m.GetFileSHA256(), length: m.GetFileLength()}, true
	}
	return mediaFields{}, false
}

// receive downloads the file from the media host and checks it as a phone
// does (download.go): the encrypted file's hash, the HMAC, the AES-CBC
// decryption and the plaintext's hash. The view's sha256 is computed from
// the decrypted bytes, not copied from the message.
func (m *mediaHost) receive(ctx context.Context, f mediaFields) (*Media, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+m.addr+f.directPath, nil)
	if err != nil {
		return nil, fmt.Errorf("media download request: %w", err)
	}
	resp, err := m.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("media download: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("media download: %s", resp.Status)
	}
	enc, err := io.ReadAll(io.LimitReader(resp.Body, maxUpload))
	if err != nil {
		return nil, fmt.Errorf("media download: %w", err)
	}
	if sum := sha256.Sum256(enc); !bytes.Equal(sum[:], f.encSHA256) {
		return nil, fmt.Errorf("media: encrypted file's SHA-256 differs from the message's")
	}
	if len(enc) <= 10 {
		return nil, fmt.Errorf("media: encrypted file of %d bytes is too short", len(enc))
	}
	ciphertext, mac := enc[:len(enc)-10], enc[len(enc)-10:]
	keys := hkdfutil.SHA256(f.mediaKey, nil, []byte(f.appInfo), 112)
	iv, cipherKey, macKey := keys[:16], keys[16:48], keys[48:80]
	h := hmac.New(sha256.New, macKey)
	h.Write(iv)
	h.Write(ciphertext)
	if !hmac.Equal(h.Sum(nil)[:10], mac) {
		return nil, fmt.Errorf("media: HMAC does not verify")
	}
	plain, err := cbcutil.Decrypt(cipherKey, iv, ciphertext)
	if err != nil {
		return nil, fmt.Errorf("media: decrypt: %w", err)
	}
	sum := sha256.Sum256(plain)
	if !bytes.Equal(sum[:], f.sha256) || uint64(len(plain)) != f.length {
		return nil, fmt.Errorf("media: decrypted file differs from the message's hash or length")
	}
	return &Media{Kind: f.kind, MIME: f.mime, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(plain)), Filename: f.filename}, nil
}
