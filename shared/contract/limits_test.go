package contract

import (
	"context"
	"net"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/wa-sidecar/wa-sidecar/shared/contract/pb"
)

// sendBig sends a 16 MiB file to a worker served by srv.
func sendBig(t *testing.T, srv *grpc.Server) (*pb.SendTextResponse, error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pb.RegisterWorkerServer(srv, &server{impl: &fakeWorker{}})
	go func() { _ = srv.Serve(ln) }()
	defer srv.Stop()
	conn, err := grpc.NewClient(ln.Addr().String(), append(GRPCDialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	w := &client{c: pb.NewWorkerClient(conn)}
	return w.SendMedia(context.Background(), &pb.SendMediaRequest{Id: "m1", Data: make([]byte, 16<<20), Mime: "application/pdf"})
}

// A file larger than gRPC's 4 MiB default crosses the contract whole with
// the limits both sides set, and a worker without them would refuse it.
func TestSendMediaCarriesLargeFiles(t *testing.T) {
	resp, err := sendBig(t, GRPCServer(nil))
	if err != nil || resp.Id != "m1/16777216" {
		t.Fatalf("16 MiB SendMedia: %v %v", resp, err)
	}
	if _, err := sendBig(t, grpc.NewServer()); err == nil || !strings.Contains(err.Error(), "larger than max") {
		t.Fatalf("a default server took a 16 MiB message: %v", err)
	}
}
