// Package orgid validates organization IDs. IDs become file and directory
// names under state_dir, so every ID is checked here before any path is built.
package orgid

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

var (
	pattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	// An ID shaped like an archive name would share a directory name with
	// another organization's archived auth store.
	archiveLike = regexp.MustCompile(`_(` + strings.Join(ArchiveReasons, "|") + `)_[0-9]+$`)
)

// ArchiveReasons are the words that archived auth directories carry:
// `<org>_<reason>_<unix-ms>`.
var ArchiveReasons = []string{"corrupted", "loggedout", "deleted", "moved"}

// Validate returns an error naming the problem when id is not a valid
// organization ID: 1 to 64 characters of A-Z, a-z, 0-9, '_' or '-'.
func Validate(id string) error {
	if id == "" {
		return fmt.Errorf("organization id is empty")
	}
	if !pattern.MatchString(id) {
		return fmt.Errorf("organization id %s is invalid: use 1 to 64 characters of A-Z, a-z, 0-9, '_' or '-'", quote(id))
	}
	if archiveLike.MatchString(id) {
		return fmt.Errorf("organization id %s is invalid: it has the shape of an archived auth directory", quote(id))
	}
	return nil
}

// quote keeps error messages one short line even for hostile input: the
// quoted form (where one odd byte takes four characters) is what is cut.
func quote(s string) string {
	const max = 80
	q := strconv.Quote(s)
	if len(q) > max {
		return q[:max] + "..."
	}
	return q
}
