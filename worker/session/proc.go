package session

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
)

// statm is /proc/self/statm, opened once and kept: a sandboxed worker may
// not open anything under /proc, so confine opens it before the sandbox.
var statm = sync.OnceValues(func() (*os.File, error) {
	return os.Open("/proc/self/statm")
})

// residentBytes reads the process's resident set from /proc/self/statm
// (second field, in pages): cheaper than parsing /proc/self/status, and
// what the supervisor's worker_rss_bytes metric reports.
func residentBytes() (int64, error) {
	f, err := statm()
	if err != nil {
		return 0, fmt.Errorf("read resident set size: %w", err)
	}
	// procfs renders the file anew for every read from offset 0.
	buf := make([]byte, 256)
	n, err := f.ReadAt(buf, 0)
	if n == 0 && err != nil {
		return 0, fmt.Errorf("read resident set size: %w", err)
	}
	return parseStatm(string(buf[:n]), os.Getpagesize())
}

func parseStatm(statm string, pageSize int) (int64, error) {
	fields := strings.Fields(statm)
	if len(fields) < 2 {
		return 0, fmt.Errorf("parse /proc/self/statm %q: fewer than 2 fields", statm)
	}
	pages, err := strconv.ParseInt(fields[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse /proc/self/statm resident pages: %w", err)
	}
	return pages * int64(pageSize), nil
}
