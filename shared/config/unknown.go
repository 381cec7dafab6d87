package config

import (
	"bufio"
	"bytes"
	"encoding"
	"fmt"
	"reflect"
	"strings"

	"github.com/agnivade/levenshtein"
)

// unknownKey describes a key the file sets and no setting has: where it is
// and, when one is close, the known key that was probably meant, so that a
// typo costs one look rather than a read of the whole reference.
func unknownKey(key string, data []byte) string {
	msg := "unknown key " + key
	if line := keyLine(data, key); line > 0 {
		msg = fmt.Sprintf("line %d: %s", line, msg)
	}
	if near := closestKey(key, knownKeys()); near != "" {
		msg += fmt.Sprintf(" (did you mean %s?)", near)
	}
	return msg
}

// closestKey is the known key fewest edits away from key, if it is close
// enough to be a typo (at most a third of the key's length, and 3 edits);
// "" otherwise. Ties go to the first in known.
func closestKey(key string, known []string) string {
	best, bestDist := "", 0
	for _, k := range known {
		d := levenshtein.ComputeDistance(key, k)
		if best == "" || d < bestDist {
			best, bestDist = k, d
		}
	}
	if best == "" || bestDist > min(3, max(1, len(key)/3)) {
		return ""
	}
	return best
}

// knownKeys lists every key and table a config file may set, dotted as
// TOML writes them ("workers", "workers.max_live", "org.proxy"), from
// Config's toml tags.
func knownKeys() []string {
	var keys []string
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
			if name == "" || name == "-" {
				continue
			}
			ft := f.Type
			for ft.Kind() == reflect.Pointer || ft.Kind() == reflect.Slice {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct && !reflect.PointerTo(ft).Implements(reflect.TypeFor[encoding.TextUnmarshaler]()) {
				keys = append(keys, prefix+name)
				walk(ft, prefix+name+".")
				continue
			}
			keys = append(keys, prefix+name)
		}
	}
	walk(reflect.TypeFor[Config](), "")
	return keys
}

// keyLine finds the line that sets key ("workers.max_lives"), 0 when the
// scan cannot tell. BurntSushi/toml keeps key positions to itself, so this
// follows the table headers and the "name =" lines; a line inside a
// multi-line string that looks like a key could mislead it, which costs a
// wrong line number, never a wrong verdict.
func keyLine(data []byte, key string) int {
	table := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "[["):
			name, _, _ := strings.Cut(strings.TrimPrefix(line, "[["), "]]")
			table = normalKey(name)
			if table == key {
				return n
			}
		case strings.HasPrefix(line, "["):
			name, _, _ := strings.Cut(strings.TrimPrefix(line, "["), "]")
			table = normalKey(name)
			if table == key {
				return n
			}
		default:
			name, _, ok := strings.Cut(line, "=")
			if !ok || strings.HasPrefix(line, "#") {
				continue
			}
			full := normalKey(name)
			if table != "" {
				full = table + "." + full
			}
			// A key of an inline table (x = {y = 1}) is reported under x.
			if full == key || strings.HasPrefix(key, full+".") {
				return n
			}
		}
	}
	return 0
}

// normalKey writes a TOML key as Key.String does: dotted parts without
// spaces or plain quotes.
func normalKey(s string) string {
	parts := strings.Split(strings.TrimSpace(s), ".")
	for i, p := range parts {
		parts[i] = strings.Trim(strings.TrimSpace(p), `"'`)
	}
	return strings.Join(parts, ".")
}
