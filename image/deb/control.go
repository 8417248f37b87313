package deb

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
)

// ControlFile returns the control file of the .deb at debPath: the
// package's stanza as a Packages index carries it, less Filename, Size
// and the checksums.
func ControlFile(debPath string) ([]byte, error) {
	f, err := os.Open(debPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	tr, closeTar, err := memberTar(f, fi.Size(), "control.tar")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", debPath, err)
	}
	defer closeTar()
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil, fmt.Errorf("%s: no control file in control.tar", debPath)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: control.tar: %w", debPath, err)
		}
		if path.Clean(strings.TrimPrefix(hdr.Name, "./")) != "control" {
			continue
		}
		b, err := io.ReadAll(io.LimitReader(tr, 1<<20))
		if err != nil {
			return nil, fmt.Errorf("%s: control: %w", debPath, err)
		}
		return b, nil
	}
}

// Installed parses dpkg's status file (/var/lib/dpkg/status) and returns
// the packages installed, by name, version and architecture, in the
// file's order.
func Installed(status []byte) ([]Package, error) {
	var out []Package
	for i, para := range bytes.Split(status, []byte("\n\n")) {
		if len(bytes.TrimSpace(para)) == 0 {
			continue
		}
		f, err := readParagraph(bytes.NewReader(para))
		if err != nil {
			return nil, fmt.Errorf("dpkg status, paragraph %d: %w", i+1, err)
		}
		// "install ok installed"; half-installed and config-files
		// packages are not part of the system.
		if !strings.HasSuffix(f["Status"], " installed") {
			continue
		}
		p := Package{Name: f["Package"], Version: f["Version"], Architecture: f["Architecture"]}
		if p.Name == "" || p.Version == "" {
			return nil, fmt.Errorf("dpkg status, paragraph %d: installed package without Package or Version", i+1)
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return nil, errors.New("dpkg status: no installed package")
	}
	return out, nil
}
