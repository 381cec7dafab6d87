package session

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/types"
	"google.golang.org/protobuf/proto"

	"github.com/wa-sidecar/wa-sidecar/shared/contract/pb"
	"github.com/wa-sidecar/wa-sidecar/shared/phone/e164"
)

// maxTyping bounds the typing indicator a caller may ask for.
const maxTyping = time.Minute

// SendText sends one text with the caller's message ID, so that a resend
// after a crash is the same message to the recipient's phone. A refusal by
// the server comes back as server_error, not as an error: the outcome is
// known, and the supervisor decides what a code means. An error means the
// outcome is unknown.
func (s *Session) SendText(ctx context.Context, req *pb.SendTextRequest) (*pb.SendTextResponse, error) {
	if err := e164.Validate(req.To); err != nil {
		return nil, fmt.Errorf("send text: recipient: %w", err)
	}
	if req.Text == "" {
		return nil, errors.New("send text: text is empty")
	}
	if req.Id == "" {
		return nil, errors.New("send text: id is empty; the caller fixes it so that a resend is the same message")
	}
	cli := s.client()
	if cli == nil || !cli.IsLoggedIn() {
		return nil, errors.New("send text: not connected to WhatsApp")
	}
	return s.deliver(ctx, cli, "send text", req.To, req.Id, req.TypingMs, &waE2E.Message{Conversation: proto.String(req.Text)})
}

// deliver sends msg to the number with the caller's fixed ID, after the
// typing indicator if asked: a refusal by the server is an answer
// (server_error), any other error leaves the outcome unknown.
func (s *Session) deliver(ctx context.Context, cli *whatsmeow.Client, what, number, id string, typingMs int64, msg *waE2E.Message) (*pb.SendTextResponse, error) {
	to := types.NewJID(number, types.DefaultUserServer)
	if typing := time.Duration(typingMs) * time.Millisecond; typing > 0 {
		s.showTyping(ctx, cli, to, min(typing, maxTyping))
	}
	resp, err := cli.SendMessage(ctx, to, msg, whatsmeow.SendRequestExtra{ID: types.MessageID(id)})
	if code, refused := serverError(err); refused {
		s.log.Warn("the server refused a message", "message_id", id, "code", code)
		return &pb.SendTextResponse{Id: id, ServerError: int32(code)}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s to %s: %w", what, number, err)
	}
	return &pb.SendTextResponse{Id: string(resp.ID), ServerTimestampUnixMs: resp.Timestamp.UnixMilli()}, nil
}

// showTyping shows "typing…" to the recipient for d, as a person would
// before a message; failing to show it does not stop the send.
func (s *Session) showTyping(ctx context.Context, cli *whatsmeow.Client, to types.JID, d time.Duration) {
	if err := cli.SendChatPresence(ctx, to, types.ChatPresenceComposing, types.ChatPresenceMediaText); err != nil {
		s.log.Debug("typing indicator not shown", "error", err)
		return
	}
	select {
	case <-time.After(d):
	case <-ctx.Done():
	}
	if err := cli.SendChatPresence(ctx, to, types.ChatPresencePaused, ""); err != nil {
		s.log.Debug("typing indicator not cleared", "error", err)
	}
}

// serverError reads whatsmeow's "server returned error N" (send.go:442),
// which has no typed form.
func serverError(err error) (int, bool) {
	if !errors.Is(err, whatsmeow.ErrServerReturnedError) {
		return 0, false
	}
	_, after, _ := strings.Cut(err.Error(), whatsmeow.ErrServerReturnedError.Error())
	code, perr := strconv.Atoi(strings.TrimSpace(after))
	if perr != nil || code == 0 {
		return 0, false
	}
	return code, true
}
