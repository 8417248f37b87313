package tlsca

// Where guests look for trusted roots. A guest trusts the CA once its
// certificate (CertPEM) is in one of these files; GuestFiles gives the
// files to write for each kind of guest.
const (
	// DebianCAFile is where Debian and Ubuntu take local CAs from:
	// update-ca-certificates (DebianUpdateCommand) adds every *.crt below
	// /usr/local/share/ca-certificates to BundleFile. Clients trust the CA
	// only after it runs.
	DebianCAFile = "/usr/local/share/ca-certificates/shakedown.crt"
	// DebianUpdateCommand rebuilds BundleFile from the system's CAs and
	// DebianCAFile; run it on the guest after writing DebianCAFile.
	DebianUpdateCommand = "update-ca-certificates"
	// BundleFile is the bundle that OpenSSL, GnuTLS, curl and Go read on
	// Debian-family systems (and Alpine, and Go wherever it finds it
	// first). A guest with no update tool, an initramfs machine say, gets
	// the CA as the whole bundle: then it trusts the test's CA alone.
	BundleFile = "/etc/ssl/certs/ca-certificates.crt"
)

// Guest is a kind of guest, by how it takes trusted roots.
type Guest int

const (
	// Debian: a Debian or Ubuntu system with ca-certificates installed.
	// Its files are DebianCAFile; run DebianUpdateCommand once they are
	// written.
	Debian Guest = iota
	// Bundle: a guest with no update tool (an initramfs machine, a
	// minimal image). Its file is BundleFile, holding the CA alone, and
	// nothing needs to run.
	Bundle
)

// GuestFiles returns the files, guest path to content, that make a guest
// of kind g trust the CA: for a machine's configuration (its Files) or a
// copy at run time. For Debian, run DebianUpdateCommand after.
func (ca *CA) GuestFiles(g Guest) map[string][]byte {
	switch g {
	case Bundle:
		return map[string][]byte{BundleFile: ca.CertPEM()}
	default:
		return map[string][]byte{DebianCAFile: ca.CertPEM()}
	}
}
