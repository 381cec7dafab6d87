package fleet

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/wa-sidecar/wa-sidecar/shared/contract/pb"
	"github.com/wa-sidecar/wa-sidecar/supervisor/lifecycle"
)

func TestTranslate(t *testing.T) {
	cases := []struct {
		ev   *pb.Event
		want lifecycle.Input
	}{
		{&pb.Event{Kind: &pb.Event_Qr{Qr: &pb.QR{Code: "2@x", PngDataUrl: "data:", ExpiresAtUnixMs: 1000}}},
			lifecycle.QRShown{Gen: 3, Code: "2@x", PNG: "data:", ExpiresAt: time.UnixMilli(1000)}},
		{&pb.Event{Kind: &pb.Event_TemporaryBan{TemporaryBan: &pb.TemporaryBan{Code: "101"}}}, lifecycle.Banned{Gen: 3, Code: "101"}},
		{&pb.Event{Kind: &pb.Event_BadMac{BadMac: &pb.BadMAC{MessageId: "m", Sender: "s"}}}, lifecycle.BadMAC{Gen: 3, MessageID: "m", Sender: "s"}},
		{&pb.Event{Kind: &pb.Event_LoggedOut{LoggedOut: &pb.LoggedOut{Reason: "401"}}}, lifecycle.LoggedOut{Gen: 3, Reason: "401"}},
		// A kind without its message, as a broken worker might send.
		{&pb.Event{Kind: &pb.Event_Qr{}}, nil},
		{&pb.Event{}, nil},
	}
	for _, c := range cases {
		if got := translate(3, c.ev); got != c.want {
			t.Errorf("translate(%v) = %#v, want %#v", c.ev, got, c.want)
		}
	}
}

// Whatever bytes a worker puts on the wire, translating them never crashes
// the supervisor.
func FuzzTranslate(f *testing.F) {
	for _, ev := range []*pb.Event{
		{Kind: &pb.Event_Qr{Qr: &pb.QR{Code: "2@x"}}},
		{Kind: &pb.Event_TemporaryBan{TemporaryBan: &pb.TemporaryBan{ExpiresAtUnixMs: -1}}},
		{Kind: &pb.Event_BadMac{BadMac: &pb.BadMAC{}}},
		{AtUnixMs: 1, Kind: &pb.Event_MessageReceived{}},
	} {
		b, _ := proto.Marshal(ev)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var ev pb.Event
		if proto.Unmarshal(data, &ev) != nil {
			return
		}
		if in := translate(1, &ev); in != nil {
			lifecycle.Step(lifecycle.New("2"), in, time.Unix(0, 0), lifecycle.Policy{})
		}
	})
}
