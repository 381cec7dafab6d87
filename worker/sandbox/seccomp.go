//go:build amd64 || arm64

package sandbox

import (
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Offsets into struct seccomp_data.
const (
	offNr   = 0
	offArch = 4
	offArg0 = 16 // low half of args[0] on these little-endian machines
)

// x32Bit marks x32 system calls on amd64, another numbering that a filter
// for the native one would let through.
const x32Bit = 0x40000000

// denyUnixSockets installs, on every thread, a filter that fails
// socket(AF_UNIX, ...) and io_uring_setup with EACCES, and every system
// call of a foreign ABI (i386 or x32 on amd64) as well. The worker's own
// plugin socket is already listening and accepts without socket(2); Go's
// resolver and whatsmeow use no unix socket. socketpair stays: its pair
// reaches nobody.
func denyUnixSockets() error {
	deny := uint32(unix.SECCOMP_RET_ERRNO | uint32(unix.EACCES))
	filter := []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: offArch},
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 0, Jf: 7, K: auditArch},
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: offNr},
		{Code: unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K, Jt: 5, Jf: 0, K: x32Bit},
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 4, Jf: 0, K: unix.SYS_IO_URING_SETUP},
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 0, Jf: 2, K: unix.SYS_SOCKET},
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: offArg0},
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 1, Jf: 0, K: unix.AF_UNIX},
		{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW},
		{Code: unix.BPF_RET | unix.BPF_K, K: deny},
	}
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	// no_new_privs on this thread lets an unprivileged process install the
	// filter; TSYNC then gives every thread both.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("seccomp: no_new_privs: %w", err)
	}
	r, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&prog)))
	runtime.KeepAlive(filter)
	switch {
	case errno != 0:
		return fmt.Errorf("seccomp: %w", errno)
	case r != 0:
		// TSYNC answers with the id of a thread it could not synchronize.
		return fmt.Errorf("seccomp: thread %d could not take the filter", r)
	}
	return nil
}
