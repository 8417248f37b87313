package bootfiles

import (
	"strings"
	"testing"

	"github.com/shakedown-dev/shakedown/image/debian"
	"github.com/shakedown-dev/shakedown/internal/agentproto"
)

func TestCmdline(t *testing.T) {
	for _, tt := range []struct {
		name   string
		debian bool
		args   []string
		want   string
		not    string
	}{
		{"initramfs", false, nil, "console=ttyS0 panic=-1 mitigations=off " + agentproto.ParamHostname + "=web", "root="},
		{"debian", true, nil, "root=/dev/vda rw " + agentproto.ParamRoot + "=/dev/vda systemd.hostname=web net.ifnames=0", ""},
		{"user args last", true, []string{"quiet", "x=1"}, "net.ifnames=0 quiet x=1", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := Cmdline("web", tt.debian, tt.args)
			if !strings.Contains(got, tt.want) || (tt.not != "" && strings.Contains(got, tt.not)) {
				t.Errorf("Cmdline = %q, want it to hold %q and not %q", got, tt.want, tt.not)
			}
		})
	}
}

func TestCheckDebian(t *testing.T) {
	for _, tt := range []struct {
		name string
		spec Spec
		want string
	}{
		{"not debian", Spec{Packages: []string{"curl"}, Kernel: "/k"}, ""},
		{"plain", Spec{Debian: &debian.System{}}, ""},
		{"units", Spec{Debian: &debian.System{Units: map[string]string{"web.service": "", "x.timer": ""}}}, ""},
		{"kernel", Spec{Kernel: "/k", Debian: &debian.System{}}, "leave Kernel and Initrd empty"},
		{"packages", Spec{Packages: []string{"curl"}, Debian: &debian.System{}}, "go in Debian.Packages"},
		{"unit name", Spec{Debian: &debian.System{Units: map[string]string{"../web": ""}}}, `unit "../web"`},
		{"size", Spec{Debian: &debian.System{SizeMiB: -1}}, "negative root size"},
		{"initrd", Spec{Initrd: "/i", Debian: &debian.System{}}, "leave Kernel and Initrd empty"},
		{"services", Spec{Services: []agentproto.Service{{Name: "a"}}, Debian: &debian.System{}}, "Debian.Units"},
	} {
		err := CheckDebian(tt.spec)
		if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%s: got %v, want %q", tt.name, err, tt.want)
		}
	}
}
