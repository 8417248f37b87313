package shakedown

import (
	"strings"
	"testing"
)

func TestCheckServices(t *testing.T) {
	tests := []struct {
		name string
		cfg  MachineConfig
		want string
	}{
		{"ok", MachineConfig{Services: []Service{{Name: "a", Command: "x"}, {Name: "b", Command: "y", After: []string{"a"}}}}, ""},
		{"unknown dependency", MachineConfig{Services: []Service{{Name: "a", Command: "x", After: []string{"db"}}}}, `service a: unknown dependency "db" (services: a)`},
		{"cycle", MachineConfig{Services: []Service{{Name: "a", Command: "x", After: []string{"b"}}, {Name: "b", Command: "y", After: []string{"a"}}}}, "dependency cycle a -> b -> a"},
		{"own initrd", MachineConfig{Initrd: "/x", Services: []Service{{Name: "a", Command: "x"}}}, "services need shakedown's initramfs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkServices(tt.cfg)
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("got %v, want %q", err, tt.want)
			}
		})
	}
}
