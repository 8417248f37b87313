package suggest

import "testing"

func TestDistance(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"abc", "", 3},
		{"", "abc", 3},
		{"virtio_pci", "virtio_pci", 0},
		{"virtio_pcu", "virtio_pci", 1},
		{"busybox-statik", "busybox-static", 1},
		{"kitten", "sitting", 3},
		{"succed", "succeed", 1},
	}
	for _, tt := range tests {
		if got := Distance(tt.a, tt.b); got != tt.want {
			t.Errorf("Distance(%q, %q): got %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}
