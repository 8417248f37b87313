package lockfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shakedown-dev/shakedown/image/pkgset"
)

func TestCheckRequest(t *testing.T) {
	l := pkgset.NewLock([]string{"jq", "curl"}, nil)
	for _, tc := range []struct {
		name    string
		request []string
		want    string // "" means accepted
	}{
		{"same", []string{"curl", "jq"}, ""},
		{"other order, twice", []string{"jq", "curl", "jq"}, ""},
		{"added", []string{"curl", "jq", "wget"}, "x is for other packages: the spec adds wget (delete it"},
		{"removed", []string{"jq"}, "x is for other packages: the spec no longer has curl (delete it"},
		{"both", []string{"jq", "wget"}, "the spec adds wget; the spec no longer has curl"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckRequest("x", l, tc.request)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("got %v, want no error", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}

func TestRead(t *testing.T) {
	dir := t.TempDir()
	if l, err := Read(filepath.Join(dir, "none.lock"), []string{"jq"}); l != nil || err != nil {
		t.Errorf("no file: got %v, %v, want nil, nil", l, err)
	}
	path := filepath.Join(dir, "jq.lock")
	if err := pkgset.WriteLock(path, pkgset.NewLock([]string{"jq"}, nil)); err != nil {
		t.Fatal(err)
	}
	if l, err := Read(path, []string{"jq"}); err != nil || l == nil {
		t.Errorf("got %v, %v, want the lock", l, err)
	}
	if _, err := Read(path, []string{"curl"}); err == nil || !strings.Contains(err.Error(), "lock file "+path+" is for other packages") {
		t.Errorf("other packages: got %v, want an error naming the file", err)
	}
	corrupt := filepath.Join(dir, "corrupt.lock")
	os.WriteFile(corrupt, []byte("{"), 0o644)
	if _, err := Read(corrupt, nil); err == nil || !strings.Contains(err.Error(), "delete it to lock afresh") {
		t.Errorf("corrupt: got %v, want an error saying to delete it", err)
	}
}
