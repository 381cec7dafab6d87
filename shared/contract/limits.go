package contract

import (
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

// MaxMediaBytes is the largest file the contract carries in one SendMedia:
// WhatsApp's own ceiling for a document. media.max_bytes may not exceed it,
// so one fixed gRPC limit on both sides fits every configuration without the
// worker having to learn the supervisor's setting before it serves.
const MaxMediaBytes = 100 << 20

// MaxMessageBytes is gRPC's message limit on both sides: a whole file plus
// room for the other fields. gRPC's default of 4 MiB would refuse most videos
// and documents.
const MaxMessageBytes = MaxMediaBytes + 1<<20

// GRPCServer is the worker's gRPC server factory (ServeConfig.GRPCServer),
// go-plugin's default with the message limit raised.
func GRPCServer(opts []grpc.ServerOption) *grpc.Server {
	return plugin.DefaultGRPCServer(append(opts,
		grpc.MaxRecvMsgSize(MaxMessageBytes), grpc.MaxSendMsgSize(MaxMessageBytes)))
}

// GRPCDialOptions is the supervisor's half (ClientConfig.GRPCDialOptions).
func GRPCDialOptions() []grpc.DialOption {
	return []grpc.DialOption{grpc.WithDefaultCallOptions(
		grpc.MaxCallSendMsgSize(MaxMessageBytes), grpc.MaxCallRecvMsgSize(MaxMessageBytes))}
}
