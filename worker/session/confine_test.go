package session

import (
	"slices"
	"testing"

	"github.com/wa-sidecar/wa-sidecar/shared/contract/pb"
)

func TestDialPorts(t *testing.T) {
	cases := []struct {
		req  *pb.StartRequest
		want []uint16
	}{
		{&pb.StartRequest{}, nil},
		{&pb.StartRequest{Proxy: "socks5://u:p@proxy.example:1081"}, []uint16{1081}},
		{&pb.StartRequest{Proxy: "http://proxy.example:3128", EmulatorUrl: "http://127.0.0.1:40123"}, []uint16{3128, 40123}},
		{&pb.StartRequest{EmulatorUrl: "https://emu.example"}, []uint16{443}},
	}
	for _, c := range cases {
		got, err := dialPorts(c.req)
		if err != nil {
			t.Fatalf("dialPorts(%v): %v", c.req, err)
		}
		want := append(slices.Clone(wellKnownPorts), c.want...)
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("dialPorts(%v) = %v, want %v", c.req, got, want)
		}
	}
	if _, err := dialPorts(&pb.StartRequest{EmulatorUrl: "ftp://emu.example"}); err == nil {
		t.Error("an emulator URL without a port or a known scheme was accepted")
	}
}
