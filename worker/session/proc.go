package session

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// residentBytes reads the process's resident set from /proc/self/statm
// (second field, in pages): cheaper than parsing /proc/self/status, and
// what the supervisor's worker_rss_bytes metric reports.
func residentBytes() (int64, error) {
	raw, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, fmt.Errorf("read resident set size: %w", err)
	}
	return parseStatm(string(raw), os.Getpagesize())
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
