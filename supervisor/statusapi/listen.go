package statusapi

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/config"
)

// socketMode lets the supervisor's group (Django's user joins it) connect,
// and nobody else.
const socketMode = 0o660

// Listen opens the API's listener: "unix:/path" for a unix socket, anything
// else as a TCP host:port. Its connections answer in JSON even what Go's
// HTTP server refuses before the API's handler runs (see jsonErrorConn).
func Listen(addr string) (net.Listener, error) {
	ln, err := listen(addr)
	if err != nil {
		return nil, err
	}
	return jsonErrorListener{ln}, nil
}

func listen(addr string) (net.Listener, error) {
	path, ok := config.IsUnixListen(addr)
	if !ok {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("status api: %w", err)
		}
		return ln, nil
	}
	if err := removeStaleSocket(path); err != nil {
		return nil, fmt.Errorf("status api: %w", err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("status api: %w", err)
	}
	// Between Listen and Chmod the socket carries the umask's mode; the
	// directory (systemd's RuntimeDirectory, 0750) is what guards that window.
	if err := os.Chmod(path, socketMode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("status api: %w", err)
	}
	return ln, nil
}

// removeStaleSocket deletes a socket file left by a supervisor that did not
// shut down cleanly, which would make Listen fail with "address in use". It
// refuses to delete anything that is not a socket (a mistyped path must not
// cost a file) and a socket that still answers (another supervisor runs).
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("%s exists and is not a socket; refusing to replace it", path)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("%s is in use by another process", path)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("remove stale socket: %w", err)
	}
	return nil
}
