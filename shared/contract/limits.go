package contract

import (
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/wa-sidecar/wa-sidecar/shared/media"
)

// MaxMessageBytes is gRPC's message limit on both sides: the largest file
// media.max_bytes may allow, plus room for the other fields. gRPC's default
// of 4 MiB would refuse most videos and documents. One fixed limit fits
// every configuration without the worker having to learn the supervisor's
// setting before it serves.
const MaxMessageBytes = media.MaxBytes + 1<<20

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
