package contract

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/hashicorp/go-plugin"

	"github.com/wa-sidecar/wa-sidecar/shared/contract/pb"
)

type fakeWorker struct {
	started *pb.StartRequest
	events  []*pb.Event
}

func (f *fakeWorker) Start(_ context.Context, req *pb.StartRequest) (*pb.StartResponse, error) {
	f.started = req
	if req.Restore {
		// A restore on a store that lost its device.
		return &pb.StartResponse{DeviceMissing: true}, nil
	}
	return &pb.StartResponse{Restoring: true}, nil
}

func (f *fakeWorker) Events(ctx context.Context, sink func(*pb.Event) error) error {
	for _, ev := range f.events {
		if err := sink(ev); err != nil {
			return err
		}
	}
	return nil
}

func (f *fakeWorker) Ping(context.Context) (*pb.PingResponse, error) {
	return &pb.PingResponse{Pid: 42, RssBytes: 1 << 20}, nil
}
func (f *fakeWorker) Stop(context.Context) error   { return nil }
func (f *fakeWorker) Logout(context.Context) error { return errors.New("not linked") }
func (f *fakeWorker) PairPhone(_ context.Context, phone string) (string, error) {
	return "ABCD-" + phone[:4], nil
}
func (f *fakeWorker) SendText(_ context.Context, req *pb.SendTextRequest) (*pb.SendTextResponse, error) {
	return &pb.SendTextResponse{Id: req.Id}, nil
}

func (f *fakeWorker) SendMedia(_ context.Context, req *pb.SendMediaRequest) (*pb.SendTextResponse, error) {
	return &pb.SendTextResponse{Id: fmt.Sprintf("%s/%d", req.Id, len(req.Data))}, nil
}

func (f *fakeWorker) CheckNumbers(_ context.Context, phones []string) ([]*pb.NumberCheck, error) {
	var out []*pb.NumberCheck
	for _, p := range phones {
		out = append(out, &pb.NumberCheck{Phone: p, OnWhatsapp: p != "15550000000", Jid: p + "@s.whatsapp.net"})
	}
	return out, nil
}

func TestContractOverGRPC(t *testing.T) {
	impl := &fakeWorker{events: []*pb.Event{
		{AtUnixMs: 1, Kind: &pb.Event_Qr{Qr: &pb.QR{Code: "2@abc"}}},
		{AtUnixMs: 2, Kind: &pb.Event_BadMac{BadMac: &pb.BadMAC{MessageId: "m1"}}},
	}}
	client, _ := plugin.TestPluginGRPCConn(t, false, PluginMap(impl))
	defer client.Close()
	raw, err := client.Dispense(PluginName)
	if err != nil {
		t.Fatal(err)
	}
	w := raw.(Worker)
	ctx := context.Background()

	resp, err := w.Start(ctx, &pb.StartRequest{OrganizationId: "2", AuthDir: "/x", Fingerprint: "Chrome/Windows/10.0.19045"})
	if err != nil || !resp.Restoring || impl.started.OrganizationId != "2" || impl.started.Fingerprint != "Chrome/Windows/10.0.19045" {
		t.Fatalf("Start: %v %v %v", resp, err, impl.started)
	}
	resp, err = w.Start(ctx, &pb.StartRequest{OrganizationId: "2", AuthDir: "/x", Restore: true})
	if err != nil || !impl.started.Restore || !resp.DeviceMissing || resp.Restoring {
		t.Fatalf("Start of a restore: %v %v %v", resp, err, impl.started)
	}
	var got []*pb.Event
	if err := w.Events(ctx, func(ev *pb.Event) error { got = append(got, ev); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].GetQr().GetCode() != "2@abc" || got[1].GetBadMac().GetMessageId() != "m1" {
		t.Fatalf("events: %v", got)
	}
	if p, err := w.Ping(ctx); err != nil || p.Pid != 42 {
		t.Fatalf("Ping: %v %v", p, err)
	}
	if err := w.Logout(ctx); err == nil {
		t.Fatal("Logout error lost over gRPC")
	}
	if code, err := w.PairPhone(ctx, "573001234567"); err != nil || code != "ABCD-5730" {
		t.Fatalf("PairPhone: %q %v", code, err)
	}
	checks, err := w.CheckNumbers(ctx, []string{"573001234567", "15550000000"})
	if err != nil || len(checks) != 2 || !checks[0].OnWhatsapp || checks[1].OnWhatsapp || checks[0].Jid != "573001234567@s.whatsapp.net" {
		t.Fatalf("CheckNumbers: %v %v", checks, err)
	}
	stop := errors.New("enough")
	if err := w.Events(ctx, func(*pb.Event) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("sink error not returned: %v", err)
	}
}
