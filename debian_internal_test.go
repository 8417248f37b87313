package shakedown

import (
	"strings"
	"testing"

	"github.com/shakedown-dev/shakedown/image/bootfiles"
)

func TestCheckDebian(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  MachineConfig
		want string // "" means accepted
	}{
		{"plain", MachineConfig{Debian: &DebianSystem{}}, ""},
		{"units", MachineConfig{Debian: &DebianSystem{Units: map[string]string{"web.service": "", "x.timer": ""}}}, ""},
		{"not debian", MachineConfig{Packages: []string{"curl"}}, ""},
		{"kernel", MachineConfig{Kernel: "/k", Debian: &DebianSystem{}}, "leave Kernel and Initrd empty"},
		{"packages", MachineConfig{Packages: []string{"curl"}, Debian: &DebianSystem{}}, "go in Debian.Packages"},
		{"services", MachineConfig{Services: []Service{{Name: "a", Command: "true"}}, Debian: &DebianSystem{}}, "declare them in Debian.Units"},
		{"unit name", MachineConfig{Debian: &DebianSystem{Units: map[string]string{"../web": ""}}}, `unit "../web"`},
		{"size", MachineConfig{Debian: &DebianSystem{SizeMiB: -1}}, "negative root size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := bootfiles.CheckDebian(bootSpec("", tc.cfg))
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("got %v, want no error", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}
