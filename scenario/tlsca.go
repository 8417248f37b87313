package scenario

import (
	"bytes"
	"fmt"
	"sort"
	"strings"

	"go.starlark.net/starlark"

	"github.com/shakedown-dev/shakedown"
	"github.com/shakedown-dev/shakedown/stub/tlsca"
)

// caValue is what ca() returns: a test's certificate authority
// (tlsca.CA), made when it is declared, which the web, registry and ACME
// stand-ins issue from and machines trust with machine(trust=[...]).
type caValue struct {
	name string
	ca   *tlsca.CA
}

var _ starlark.HasAttrs = (*caValue)(nil)

func (c *caValue) String() string        { return fmt.Sprintf("<ca %s>", c.name) }
func (c *caValue) Type() string          { return "ca" }
func (c *caValue) Freeze()               {}
func (c *caValue) Truth() starlark.Bool  { return starlark.True }
func (c *caValue) Hash() (uint32, error) { return starlark.String(c.name).Hash() }

// Attr returns .name, and .pem: the root certificate (tlsca.CA.CertPEM)
// as bytes, for files={"/etc/ca.pem": ca.pem} and curl --cacert.
func (c *caValue) Attr(name string) (starlark.Value, error) {
	switch name {
	case "name":
		return starlark.String(c.name), nil
	case "pem":
		return starlark.Bytes(c.ca.CertPEM()), nil
	}
	return nil, nil
}

func (c *caValue) AttrNames() []string { return []string{"name", "pem"} }

// caBuiltin is ca(name=, validity=, leaf_validity=): tlsca.Options's
// fields, the durations as strings ("720h") or seconds.
func caBuiltin(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		opts           tlsca.Options
		validity, leaf starlark.Value = starlark.None, starlark.None
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "name?", &opts.Name, "validity?", &validity, "leaf_validity?", &leaf); err != nil {
		return nil, err
	}
	var err error
	if opts.Validity, err = parseDuration(validity); err != nil {
		return nil, fmt.Errorf("%s: validity: %w", b.Name(), err)
	}
	if opts.LeafValidity, err = parseDuration(leaf); err != nil {
		return nil, fmt.Errorf("%s: leaf_validity: %w", b.Name(), err)
	}
	if opts.Validity < 0 || opts.LeafValidity < 0 {
		return nil, fmt.Errorf("%s: validity and leaf_validity: want a positive duration, or none for the defaults", b.Name())
	}
	ca, err := tlsca.New(opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	name := opts.Name
	if name == "" {
		name = "shakedown test CA"
	}
	return &caValue{name: name, ca: ca}, nil
}

// caOf reads an optional ca= keyword: nil for None.
func caOf(v starlark.Value) (*tlsca.CA, error) {
	switch v := v.(type) {
	case starlark.NoneType:
		return nil, nil
	case *caValue:
		return v.ca, nil
	}
	return nil, fmt.Errorf("got %s, want ca()", v.Type())
}

// trustFiles are the files that make a machine trust the CAs: for a
// Debian machine each in /usr/local/share/ca-certificates (tlsca.Debian;
// the scenario runs update-ca-certificates once it has booted), for an
// initramfs machine all of them as the whole bundle (tlsca.Bundle), which
// needs nothing run.
func trustFiles(it starlark.Iterable, debian bool) ([]shakedown.File, error) {
	var cas []*tlsca.CA
	for _, v := range iterValues(it) {
		c, ok := v.(*caValue)
		if !ok {
			return nil, fmt.Errorf("got %s in the list, want ca()", v.Type())
		}
		cas = append(cas, c.ca)
	}
	if len(cas) == 0 {
		return nil, nil
	}
	if !debian {
		var bundle bytes.Buffer
		for _, ca := range cas {
			bundle.Write(ca.CertPEM())
		}
		return []shakedown.File{{Guest: tlsca.BundleFile, Data: bundle.Bytes(), Mode: 0o644}}, nil
	}
	var files []shakedown.File
	for i, ca := range cas {
		gf := ca.GuestFiles(tlsca.Debian)
		paths := make([]string, 0, len(gf))
		for p := range gf {
			paths = append(paths, p)
		}
		sort.Strings(paths)
		for _, p := range paths {
			if i > 0 {
				// One file each, since each file holds one root.
				p2 := strings.TrimSuffix(p, ".crt") + fmt.Sprintf("-%d.crt", i+1)
				files = append(files, shakedown.File{Guest: p2, Data: gf[p], Mode: 0o644})
				continue
			}
			files = append(files, shakedown.File{Guest: p, Data: gf[p], Mode: 0o644})
		}
	}
	return files, nil
}
