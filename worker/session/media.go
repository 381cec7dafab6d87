package session

import (
	"context"
	"errors"
	"fmt"

	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/proto/waE2E"
	"google.golang.org/protobuf/proto"

	"github.com/wa-sidecar/wa-sidecar/shared/contract/pb"
	"github.com/wa-sidecar/wa-sidecar/shared/media"
	"github.com/wa-sidecar/wa-sidecar/shared/phone/e164"
)

// mediaTypes is whatsmeow's media type (the key derivation and upload path)
// for each kind.
var mediaTypes = map[media.Kind]whatsmeow.MediaType{
	media.Image:    whatsmeow.MediaImage,
	media.Video:    whatsmeow.MediaVideo,
	media.Voice:    whatsmeow.MediaAudio,
	media.Document: whatsmeow.MediaDocument,
}

// SendMedia uploads the file to WhatsApp's media servers and sends it with
// the caller's message ID. The upload happens on every attempt: an upload
// whose send never happened costs nothing but bytes, and the fixed ID keeps
// a resend one message to the recipient. Outcomes are SendText's.
func (s *Session) SendMedia(ctx context.Context, req *pb.SendMediaRequest) (*pb.SendTextResponse, error) {
	if err := e164.Validate(req.To); err != nil {
		return nil, fmt.Errorf("send media: recipient: %w", err)
	}
	if len(req.Data) == 0 {
		return nil, errors.New("send media: file is empty")
	}
	if req.Mime == "" {
		return nil, errors.New("send media: mime is empty")
	}
	if req.Id == "" {
		return nil, errors.New("send media: id is empty; the caller fixes it so that a resend is the same message")
	}
	cli := s.client()
	if cli == nil || !cli.IsLoggedIn() {
		return nil, errors.New("send media: not connected to WhatsApp")
	}
	kind := mediaTypes[media.KindOf(req.Mime)]
	up, err := cli.Upload(ctx, req.Data, kind)
	if err != nil {
		return nil, fmt.Errorf("send media to %s: upload: %w", req.To, err)
	}
	return s.deliver(ctx, cli, "send media", req.To, req.Id, req.TypingMs, mediaMessage(req, kind, up))
}

// mediaMessage is the waE2E message for an uploaded file of that kind.
func mediaMessage(req *pb.SendMediaRequest, kind whatsmeow.MediaType, up whatsmeow.UploadResponse) *waE2E.Message {
	caption := proto.String(req.Caption)
	if req.Caption == "" {
		caption = nil
	}
	switch kind {
	case whatsmeow.MediaImage:
		return &waE2E.Message{ImageMessage: &waE2E.ImageMessage{
			URL: proto.String(up.URL), DirectPath: proto.String(up.DirectPath), MediaKey: up.MediaKey,
			FileEncSHA256: up.FileEncSHA256, FileSHA256: up.FileSHA256, FileLength: proto.Uint64(up.FileLength),
			Mimetype: proto.String(req.Mime), Caption: caption,
		}}
	case whatsmeow.MediaVideo:
		return &waE2E.Message{VideoMessage: &waE2E.VideoMessage{
			URL: proto.String(up.URL), DirectPath: proto.String(up.DirectPath), MediaKey: up.MediaKey,
			FileEncSHA256: up.FileEncSHA256, FileSHA256: up.FileSHA256, FileLength: proto.Uint64(up.FileLength),
			Mimetype: proto.String(req.Mime), Caption: caption,
		}}
	case whatsmeow.MediaAudio:
		// A voice note carries no caption in WhatsApp; the caller's text, if
		// any, is dropped rather than sent as a second message.
		return &waE2E.Message{AudioMessage: &waE2E.AudioMessage{
			URL: proto.String(up.URL), DirectPath: proto.String(up.DirectPath), MediaKey: up.MediaKey,
			FileEncSHA256: up.FileEncSHA256, FileSHA256: up.FileSHA256, FileLength: proto.Uint64(up.FileLength),
			Mimetype: proto.String(req.Mime), PTT: proto.Bool(true),
		}}
	}
	return &waE2E.Message{DocumentMessage: &waE2E.DocumentMessage{
		URL: proto.String(up.URL), DirectPath: proto.String(up.DirectPath), MediaKey: up.MediaKey,
		FileEncSHA256: up.FileEncSHA256, FileSHA256: up.FileSHA256, FileLength: proto.Uint64(up.FileLength),
		Mimetype: proto.String(req.Mime), FileName: proto.String(req.Filename), Title: proto.String(req.Filename), Caption: caption,
	}}
}
