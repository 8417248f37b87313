package qemu

import (
	"context"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shakedown-dev/shakedown/internal/agentproto"
)

func TestConsoleLines(t *testing.T) {
	var mu sync.Mutex
	var lines []string
	var log strings.Builder
	c := NewConsole(&log, func(l string) { mu.Lock(); lines = append(lines, l); mu.Unlock() })
	c.Consume(strings.NewReader("one\r\ntw"))
	// A second process (a reboot) continues the same console.
	c.Consume(strings.NewReader("o\nthree"))
	want := []string{"one", "tw", "o", "three"}
	if !slices.Equal(lines, want) {
		t.Errorf("got lines %q, want %q (a process's unfinished line is flushed when it ends)", lines, want)
	}
	if log.String() != "one\r\ntwo\nthree" {
		t.Errorf("got log %q, want the raw bytes", log.String())
	}
	if got := c.Tail(2); !slices.Equal(got, []string{"two", "three"}) {
		t.Errorf("got tail %q, want [two three]", got)
	}
}

func TestConsoleWait(t *testing.T) {
	c := NewConsole(nil, nil)
	c.Write([]byte("booting\nlogin: "))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if m, err := c.Wait(ctx, regexp.MustCompile(`login: $`)); err != nil || m != "login: " {
		t.Errorf("got %q %v, want a match on an unfinished line", m, err)
	}
	// Output of an earlier boot does not satisfy a wait of the next one.
	c.Boot()
	done := make(chan string)
	go func() {
		m, _ := c.Wait(ctx, regexp.MustCompile(`booting`))
		done <- m
	}()
	select {
	case m := <-done:
		t.Fatalf("matched %q from the previous boot", m)
	case <-time.After(50 * time.Millisecond):
	}
	c.Write([]byte("booting again\n"))
	if m := <-done; m != "booting" {
		t.Errorf("got %q, want booting", m)
	}
	short, cancel2 := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel2()
	if _, err := c.Wait(short, regexp.MustCompile("never")); err == nil {
		t.Error("wait for absent text returned no error")
	}
}

func TestConsolePanic(t *testing.T) {
	tests := []struct {
		name, text, want string
	}{
		{"none", "all well\n", ""},
		{"init", "a\nb\nRun /init as init process\nKernel panic - not syncing: Attempted to kill init! exitcode=0x00000100\nCPU: 0\n",
			"a\nb\nRun /init as init process\nKernel panic - not syncing: Attempted to kill init! exitcode=0x00000100"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewConsole(nil, nil)
			c.Write([]byte(tt.text))
			if got := c.Panic(); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestArgs(t *testing.T) {
	a := Args(Config{Name: "m1", Kernel: "/k", Initrd: "/i", Append: "console=ttyS0", Display: true, Extra: []string{"-x"}})
	s := strings.Join(a, " ")
	for _, want := range []string{
		"-machine q35,accel=tcg", "-cpu max", "-m 512", "-smp 1", "-nodefaults", "-no-reboot",
		"-chardev socket,id=qmp,fd=3", "-chardev socket,id=con,fd=4",
		"-chardev socket,id=agent,fd=5,server=on,wait=off",
		"name=" + agentproto.PortName, "-device VGA", "-kernel /k", "-initrd /i", "-append console=ttyS0",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("args %q lack %q", s, want)
		}
	}
	if a[len(a)-1] != "-x" {
		t.Errorf("got last arg %q, want the extra one last", a[len(a)-1])
	}
	if s := strings.Join(Args(Config{Accel: AccelKVM, MemoryMiB: 2048, CPUs: 4}), " "); !strings.Contains(s, "-cpu host") || !strings.Contains(s, "-m 2048") || !strings.Contains(s, "-smp 4") || strings.Contains(s, "VGA") {
		t.Errorf("kvm args %q: want -cpu host, 2048 MiB, 4 CPUs, no VGA", s)
	}
	if strings.Contains(s, "-incoming") {
		t.Errorf("args %q wait for a saved state that was not asked for", s)
	}
	if s := strings.Join(Args(Config{State: "/s", ExtraFiles: make([]*os.File, 2)}), " "); !strings.Contains(s, "-incoming fd:8") {
		t.Errorf("args %q: want -incoming fd:8, the fd after two ExtraFiles, for a Config that loads a state", s)
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"/tmp/a.state":     "'/tmp/a.state'",
		"/tmp/it's here":   `'/tmp/it'\''s here'`,
		"/tmp/$(rm -rf x)": "'/tmp/$(rm -rf x)'",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}
