package emulator

import (
	"bytes"
	"compress/zlib"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"go.mau.fi/libsignal/keys/prekey"
	"go.mau.fi/whatsmeow"
	waBinary "go.mau.fi/whatsmeow/binary"
	"go.mau.fi/whatsmeow/proto/waAdv"
	"go.mau.fi/whatsmeow/proto/waCommon"
	"go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/proto/waHistorySync"
	"go.mau.fi/whatsmeow/proto/waWeb"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/util/cbcutil"
	"go.mau.fi/whatsmeow/util/hkdfutil"
	"google.golang.org/protobuf/proto"

	"github.com/wa-sidecar/wa-sidecar/worker/emulator/emuctl"
)

// History sync, as a phone does it for a companion it has just linked: once
// the companion's first login has uploaded its prekeys, the phone uploads
// the chat history (a zlib-compressed waHistorySync.HistorySync, encrypted
// like any media under "WhatsApp History Keys") to the media host and sends
// the companion a protocolMessage with a HistorySyncNotification pointing
// at it. whatsmeow by default downloads and decodes it in the background
// (message.go handleHistorySyncNotificationLoop) and answers the message
// with a hist_sync receipt either way.

// HistoryState is GET/PUT /control/history.
type HistoryState = emuctl.HistoryState

// HistorySent is one history notification in HistoryState.
type HistorySent = emuctl.HistorySent

const (
	// defaultHistoryBytes keeps the blob every link gets by default small,
	// so that tests which do not care pay little for it; a real account's
	// first sync runs to megabytes (PUT /control/history).
	defaultHistoryBytes = 32 << 10
	maxHistoryBytes     = 64 << 20
	// historyMMSType is whatsmeow's mms-type for history blobs (download.go).
	historyMMSType = "md-msg-hist"
)

// sentHistory is what the emulator keeps of one history notification.
type sentHistory struct {
	view HistorySent
	path string // the blob's path on the media host
}

// maybeSendHistory sends dev its history in the background the first time
// it has prekeys to encrypt to, unless history is off.
func (s *Server) maybeSendHistory(c *conn, dev *device) {
	s.mu.Lock()
	size := s.historyBytes
	if dev.historySent || size == 0 || s.closed {
		s.mu.Unlock()
		return
	}
	dev.historySent = true
	s.background.Add(1) // under mu: Close's Wait comes after closed is set
	s.mu.Unlock()
	go func() {
		defer s.background.Done()
		if err := s.sendHistory(c, dev, size); err != nil && c.ctx.Err() == nil {
			s.log.Error("sending the history sync notification failed", "jid", dev.jid.String(), "err", err)
		}
	}()
}

// sendHistory uploads a history blob of about size bytes (decoded) for dev
// and sends it the notification from the phone.
func (s *Server) sendHistory(c *conn, dev *device, size int) error {
	ph := dev.phone
	raw, err := proto.Marshal(historyPayload(ph.number, size))
	if err != nil {
		return fmt.Errorf("marshal history: %w", err)
	}
	var compressed bytes.Buffer
	zw := zlib.NewWriter(&compressed)
	if _, err := zw.Write(raw); err != nil {
		return fmt.Errorf("compress history: %w", err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("compress history: %w", err)
	}
	plain := compressed.Bytes()
	mediaKey := randomBytes(32)
	enc, err := encryptMedia(plain, mediaKey, whatsmeow.MediaHistory)
	if err != nil {
		return err
	}
	encSum, plainSum := sha256.Sum256(enc), sha256.Sum256(plain)
	path := "/mms/" + historyMMSType + "/" + base64.URLEncoding.EncodeToString(encSum[:])
	s.media.put(path, enc)

	sender, err := s.phoneSender(c.ctx, ph)
	if err != nil {
		return err
	}
	msg := &waE2E.Message{ProtocolMessage: &waE2E.ProtocolMessage{
		Type: waE2E.ProtocolMessage_HISTORY_SYNC_NOTIFICATION.Enum(),
		HistorySyncNotification: &waE2E.HistorySyncNotification{
			FileSHA256:    plainSum[:],
			FileLength:    proto.Uint64(uint64(len(plain))),
			MediaKey:      mediaKey,
			FileEncSHA256: encSum[:],
			// A real direct path carries a query, which whatsmeow extends
			// with &hash=...&mms-type=... (download.go).
			DirectPath: proto.String(path + "?ccb=11-4"),
			SyncType:   waE2E.HistorySyncType_INITIAL_BOOTSTRAP.Enum(),
			ChunkOrder: proto.Uint32(1),
			Progress:   proto.Uint32(100),
		},
	}}
	ciphertext, err := sender.encryptMessage(c.ctx, dev.jid, msg, func() (*prekey.Bundle, error) { return s.takeBundle(dev) })
	if err != nil {
		return err
	}
	id := fmt.Sprintf("3EB0%X", randomBytes(8))
	s.mu.Lock()
	s.history = append(s.history, &sentHistory{path: path, view: HistorySent{
		Device: dev.jid.String(), ID: id, Bytes: len(raw), BlobBytes: len(enc),
	}})
	s.mu.Unlock()
	err = c.send(waBinary.Node{
		Tag: "message",
		Attrs: waBinary.Attrs{
			// From the phone's LID, as the companion's pairing stored the
			// phone's identity under it (pair.go).
			"from":     sender.jid,
			"id":       id,
			"t":        fmt.Sprint(time.Now().Unix()),
			"type":     "text",
			"category": "peer",
		},
		Content: []waBinary.Node{{
			Tag:     "enc",
			Attrs:   waBinary.Attrs{"v": "2", "type": encType(ciphertext)},
			Content: ciphertext.Serialize(),
		}},
	})
	if err != nil {
		return fmt.Errorf("send history notification: %w", err)
	}
	s.log.Info("sent history sync notification", "id", id, "to", dev.jid.String(), "bytes", len(raw), "blob_bytes", len(enc))
	return nil
}

// encryptMedia is WhatsApp's media encryption (whatsmeow upload.go):
// AES-CBC under keys expanded from mediaKey for appInfo, then the first 10
// bytes of an HMAC-SHA256 over IV and ciphertext.
func encryptMedia(plain, mediaKey []byte, appInfo whatsmeow.MediaType) ([]byte, error) {
	keys := hkdfutil.SHA256(mediaKey, nil, []byte(appInfo), 112)
	iv, cipherKey, macKey := keys[:16], keys[16:48], keys[48:80]
	ciphertext, err := cbcutil.Encrypt(cipherKey, iv, plain)
	if err != nil {
		return nil, fmt.Errorf("encrypt media: %w", err)
	}
	h := hmac.New(sha256.New, macKey)
	h.Write(iv)
	h.Write(ciphertext)
	return append(ciphertext, h.Sum(nil)[:10]...), nil
}

// phoneSender is the phone's own Signal store: the phone's device 0 under
// its LID, with the account identity key the companion was told at pairing,
// so that whatsmeow trusts what it encrypts.
func (s *Server) phoneSender(ctx context.Context, ph *phone) (*peer, error) {
	key := "lid:" + ph.lidUser
	s.peersMu.Lock()
	defer s.peersMu.Unlock()
	if p, ok := s.peers[key]; ok {
		return p, nil
	}
	jid := types.NewJID(ph.lidUser, types.HiddenUserServer)
	dev := s.peerDB.NewDevice()
	dev.ID = &jid
	dev.IdentityKey = ph.identity
	dev.Account = &waAdv.ADVSignedDeviceIdentity{
		Details:             []byte{},
		AccountSignature:    make([]byte, 64),
		AccountSignatureKey: ph.identity.Pub[:],
		DeviceSignature:     make([]byte, 64),
	}
	if err := dev.Save(ctx); err != nil {
		return nil, fmt.Errorf("create store for phone %s: %w", ph.number, err)
	}
	p := &peer{jid: jid, store: dev}
	s.peers[key] = p
	return p, nil
}

// historyWords make chat-like text that compresses about as well as real
// chat history (a few times), unlike random bytes.
var historyWords = strings.Fields(`ok yes no thanks see you tomorrow at the
office meeting call me later please send photo invoice order delivered
price address when where how much done good morning night weekend lunch
dinner payment received confirm ticket number reference today tonight
sorry late traffic arrived home work school kids birthday party congrats
happy new year great idea let's talk about it soon maybe next week`)

// historyPayload is an initial bootstrap of about size bytes when
// marshalled: conversations with text messages between number and
// emulated peers. It is the same for the same arguments.
func historyPayload(number string, size int) *waHistorySync.HistorySync {
	rng := rand.New(rand.NewPCG(uint64(size), 19))
	hs := &waHistorySync.HistorySync{
		SyncType:   waHistorySync.HistorySync_INITIAL_BOOTSTRAP.Enum(),
		ChunkOrder: proto.Uint32(1),
		Progress:   proto.Uint32(100),
	}
	now := time.Now().Unix()
	total := 0
	for chat := 0; total < size; chat++ {
		peerJID := fmt.Sprintf("57300%07d@s.whatsapp.net", chat)
		conv := &waHistorySync.Conversation{ID: proto.String(peerJID)}
		for i := 0; i < 200 && total < size; i++ {
			words := make([]string, 3+rng.IntN(25))
			for j := range words {
				words[j] = historyWords[rng.IntN(len(historyWords))]
			}
			fromMe := rng.IntN(2) == 0
			m := &waHistorySync.HistorySyncMsg{
				MsgOrderID: proto.Uint64(uint64(i + 1)),
				Message: &waWeb.WebMessageInfo{
					Key: &waCommon.MessageKey{
						RemoteJID: proto.String(peerJID),
						FromMe:    proto.Bool(fromMe),
						ID:        proto.String(fmt.Sprintf("3EB0%016X", rng.Uint64())),
					},
					Message:          &waE2E.Message{Conversation: proto.String(strings.Join(words, " "))},
					MessageTimestamp: proto.Uint64(uint64(now - int64(rng.IntN(90*24*3600)))),
				},
			}
			total += proto.Size(m) + 3
			conv.Messages = append(conv.Messages, m)
		}
		hs.Conversations = append(hs.Conversations, conv)
	}
	hs.Pushnames = append(hs.Pushnames, &waHistorySync.Pushname{
		ID: proto.String(number + "@s.whatsapp.net"), Pushname: proto.String("Emulated " + number),
	})
	return hs
}

// recordHistoryReceipt notes the hist_sync receipt whatsmeow sends for a
// history notification it handled, downloaded or not.
func (s *Server) recordHistoryReceipt(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, h := range s.history {
		if h.view.ID == id {
			h.view.Receipt = true
		}
	}
}

// History is what GET /control/history answers: the blob size each new
// link gets, and every notification sent with its receipt and downloads.
func (s *Server) History() HistoryState {
	s.mu.Lock()
	out := HistoryState{Bytes: s.historyBytes, Sent: make([]HistorySent, len(s.history))}
	paths := make([]string, len(s.history))
	for i, h := range s.history {
		out.Sent[i], paths[i] = h.view, h.path
	}
	s.mu.Unlock()
	for i, path := range paths {
		out.Sent[i].Downloads, out.Sent[i].DownloadedBytes = s.media.downloadsOf(path)
	}
	return out
}

// handleHistory is GET /control/history, and PUT with { "bytes": n } to
// size the history blob of every later link (0: send none).
func (s *Server) handleHistory(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
	case http.MethodPut:
		var body struct {
			Bytes *int `json:"bytes"`
		}
		if !readJSON(w, r, &body) {
			return
		}
		if body.Bytes == nil || *body.Bytes < 0 || *body.Bytes > maxHistoryBytes {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("bytes is required, between 0 (no history) and %d", maxHistoryBytes))
			return
		}
		s.mu.Lock()
		s.historyBytes = *body.Bytes
		s.mu.Unlock()
	default:
		w.Header().Set("Allow", "GET, PUT")
		writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s %s is not supported; use GET or PUT", r.Method, r.URL.Path))
		return
	}
	writeJSON(w, http.StatusOK, s.History())
}
