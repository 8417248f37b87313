package deb

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// parseStanza parses the first paragraph of a Packages-style index (RFC 822
// fields, continuation lines indented), as `apt-cache show` prints it. Fields
// a download needs (Filename, SHA256, Size) may be missing, e.g. for a
// package known only from dpkg's status file; the caller decides what that
// means. (pault.ag/go/debian/control would parse this too, but it imports
// x/crypto/openpgp, which current x/crypto no longer has.)
func parseStanza(r io.Reader) (Package, error) {
	fields, err := readParagraph(r)
	if err != nil {
		return Package{}, fmt.Errorf("parse package stanza: %w", err)
	}
	p := Package{
		Name:         fields["Package"],
		Version:      fields["Version"],
		Architecture: fields["Architecture"],
		Filename:     fields["Filename"],
		SHA256:       strings.ToLower(fields["SHA256"]),
		// Depends may be folded over several lines; join it back to one.
		Depends:    strings.Join(strings.Fields(fields["Depends"]), " "),
		PreDepends: strings.Join(strings.Fields(fields["Pre-Depends"]), " "),
		Essential:  fields["Essential"] == "yes",
	}
	if p.Name == "" || p.Version == "" {
		return Package{}, fmt.Errorf("parse package stanza: missing Package or Version field")
	}
	if s := fields["Size"]; s != "" {
		if p.Size, err = strconv.ParseInt(s, 10, 64); err != nil || p.Size < 0 {
			return Package{}, fmt.Errorf("parse package stanza %s: bad Size %q", p.Name, s)
		}
	}
	if p.SHA256 != "" && !isSHA256(p.SHA256) {
		return Package{}, fmt.Errorf("parse package stanza %s: bad SHA256 %q", p.Name, p.SHA256)
	}
	return p, nil
}

// readParagraph reads the first paragraph of r into a map of field name to
// value, continuation lines joined with "\n".
func readParagraph(r io.Reader) (map[string]string, error) {
	fields := map[string]string{}
	var last string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024) // Description fields can be long
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.TrimSpace(line) == "":
			if len(fields) > 0 {
				return fields, nil // end of the first paragraph
			}
		case line[0] == ' ' || line[0] == '\t':
			if last == "" {
				return nil, fmt.Errorf("continuation line %q before any field", line)
			}
			fields[last] += "\n" + strings.TrimSpace(line)
		case line[0] == '#':
			// comment
		default:
			name, value, ok := strings.Cut(line, ":")
			if !ok || name == "" {
				return nil, fmt.Errorf("line %q: want \"Field: value\"", line)
			}
			last = name
			fields[name] = strings.TrimSpace(value)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(fields) == 0 {
		return nil, fmt.Errorf("empty")
	}
	return fields, nil
}

func isSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
			return false
		}
	}
	return true
}
