package hosttools

import (
	"strings"
	"testing"
)

func TestFind(t *testing.T) {
	missing := Tool{Name: "shakedown-no-such-tool", Package: "shakedown-no-such-package"}
	if _, err := missing.Find(); err == nil || !strings.Contains(err.Error(), "apt-get install shakedown-no-such-package") {
		t.Errorf("Find of a missing tool: got %v, want an error naming apt-get install shakedown-no-such-package", err)
	}
	defer func() {
		if recover() == nil {
			t.Error("Find of an unlisted tool: got no panic, want one")
		}
	}()
	Find("shakedown-unlisted")
}
