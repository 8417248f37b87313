package shakedown_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/shakedown-dev/shakedown"
)

// These tests boot nothing: a testbed of networks and named hosts needs
// no QEMU, so they run everywhere.

// TestImpairValidates: an impairment out of range used to be dropped by
// the switch without a word; now the verb says so and changes nothing.
func TestImpairValidates(t *testing.T) {
	tb := shakedown.New(t, shakedown.Options{})
	lan := tb.Network("lan", shakedown.NetworkOptions{})
	api := lan.Host("api", shakedown.HostOptions{})
	db := lan.Host("db", shakedown.HostOptions{})
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"loss over 100", lan.ImpairE(api, shakedown.Impairment{LossPercent: 150}), "loss 150% not in 0..100"},
		{"negative delay", lan.ImpairE(api, shakedown.Impairment{Delay: -1}), "delay"},
		{"pair", lan.ImpairPairE(api, db, shakedown.Impairment{CorruptPercent: -5}), "corrupt"},
		{"peer in two groups", tb.PartitionE([]shakedown.Peer{api}, []shakedown.Peer{api, db}), "api is in groups 1 and 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !errors.Is(tc.err, shakedown.ErrInvalid) || !strings.Contains(tc.err.Error(), tc.want) {
				t.Errorf("got %v, want ErrInvalid saying %q", tc.err, tc.want)
			}
		})
	}
	if err := lan.ImpairE(api, shakedown.Impairment{LossPercent: 100}); err != nil {
		t.Errorf("a valid impairment: %v", err)
	}
	if err := tb.PartitionE([]shakedown.Peer{api}, []shakedown.Peer{db}); err != nil {
		t.Errorf("a valid partition: %v", err)
	}
	if err := tb.HealE(); err != nil {
		t.Errorf("heal: %v", err)
	}
}

// TestNoQEMUUntilStart: New does not look for QEMU; starting a machine
// does, and says which package to install.
func TestNoQEMUUntilStart(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	tb, err := shakedown.NewE(t, shakedown.Options{})
	if err != nil {
		t.Fatalf("NewE without QEMU: %v, want a testbed", err)
	}
	lan := tb.Network("lan", shakedown.NetworkOptions{})
	lan.Host("api", shakedown.HostOptions{})
	m := tb.Machine("web", shakedown.MachineConfig{Networks: []string{"lan"}})
	err = m.StartE()
	var me *shakedown.MachineError
	if !errors.Is(err, shakedown.ErrNoQEMU) || !errors.As(err, &me) || me.Machine != "web" {
		t.Fatalf("StartE without QEMU: got %v, want a MachineError of web wrapping ErrNoQEMU", err)
	}
	if !strings.Contains(err.Error(), "qemu-system-x86") {
		t.Errorf("got %q, want the package to install named", err)
	}
	if err := tb.StartAllE(); !errors.Is(err, shakedown.ErrNoQEMU) {
		t.Errorf("StartAllE: got %v, want ErrNoQEMU", err)
	}
}

func TestCommandError(t *testing.T) {
	failed := &shakedown.CommandError{Cmd: "false", WantSuccess: true,
		Result: shakedown.Result{Status: 1, Stderr: []byte("nope\n")}}
	succeeded := &shakedown.CommandError{Cmd: "true"}
	for _, tc := range []struct {
		err      error
		is, isnt error
		want     string
	}{
		{failed, shakedown.ErrCommandFailed, shakedown.ErrCommandSucceeded, "command \"false\" failed with status 1\nstderr:\n  nope"},
		{succeeded, shakedown.ErrCommandSucceeded, shakedown.ErrCommandFailed, "command \"true\" succeeded, want failure"},
	} {
		wrapped := &shakedown.MachineError{Machine: "web", Err: tc.err}
		if !errors.Is(wrapped, tc.is) || errors.Is(wrapped, tc.isnt) {
			t.Errorf("%v: errors.Is(%v) false or errors.Is(%v) true", tc.err, tc.is, tc.isnt)
		}
		if got := wrapped.Error(); got != "web: "+tc.want {
			t.Errorf("got %q, want %q", got, "web: "+tc.want)
		}
	}
}

func TestMachineErrorReport(t *testing.T) {
	for _, tc := range []struct {
		console []string
		want    string
	}{
		{nil, "web: boom\n(no console output)"},
		{[]string{"a", "b"}, "web: boom\nlast console lines of web:\n  web # a\n  web # b"},
	} {
		e := &shakedown.MachineError{Machine: "web", Err: errors.New("boom"), Console: tc.console}
		if got := e.Report(); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}

func TestRunT(t *testing.T) {
	var lines []string
	rt := &shakedown.RunT{RunName: "demo", Log: func(l string) { lines = append(lines, l) }}
	var order []int
	rt.Cleanup(func() { order = append(order, 1) })
	rt.Cleanup(func() { order = append(order, 2) })
	rt.Logf("hello %d", 7)
	if rt.Failed() {
		t.Error("failed before Fail")
	}
	rt.Fail()
	rt.Close()
	rt.Close()
	if !rt.Failed() || rt.Name() != "demo" || len(lines) != 1 || lines[0] != "hello 7" {
		t.Errorf("got failed %v, name %q, lines %q", rt.Failed(), rt.Name(), lines)
	}
	if len(order) != 2 || order[0] != 2 || order[1] != 1 {
		t.Errorf("cleanups ran in order %v, want [2 1] once", order)
	}
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "E forms") {
			t.Errorf("Fatalf: recovered %v, want a panic that names the E forms", r)
		}
	}()
	rt.Fatalf("x")
}

// TestEveryVerbHasAnEForm: front ends call verbs without recovering
// panics, so every method that fails the test through T must have an
// error-returning twin named with an E.
func TestEveryVerbHasAnEForm(t *testing.T) {
	// Methods that cannot fail, or that return an error themselves.
	never := map[string]bool{
		"Name": true, "Number": true, "Network": true, "Addr": true, "Addr6": true, "PID": true,
		"Machines": true, "Hosts": true, "Context": true, "OutputDir": true, "Accel": true,
		"WithTimeout": true, "WithT": true, "Crash": true, "Subtest": true, "Step": true,
		"ConsoleLog": true, "IsUp": true,
	}
	errType := reflect.TypeFor[error]()
	for _, typ := range []reflect.Type{
		reflect.TypeFor[*shakedown.Testbed](), reflect.TypeFor[*shakedown.Machine](),
		reflect.TypeFor[*shakedown.Network](), reflect.TypeFor[*shakedown.Host](),
	} {
		for i := range typ.NumMethod() {
			m := typ.Method(i)
			returnsErr := m.Type.NumOut() > 0 && m.Type.Out(m.Type.NumOut()-1) == errType
			if never[m.Name] || returnsErr || strings.HasSuffix(m.Name, "E") {
				continue
			}
			e, ok := typ.MethodByName(m.Name + "E")
			if !ok {
				t.Errorf("%s.%s has no %sE", typ.Elem().Name(), m.Name, m.Name)
				continue
			}
			if e.Type.NumIn() != m.Type.NumIn() || e.Type.NumOut() != m.Type.NumOut()+1 || e.Type.Out(e.Type.NumOut()-1) != errType {
				t.Errorf("%s.%sE: got %v, want %v's arguments and results with an error after them", typ.Elem().Name(), m.Name, e.Type, m.Type)
			}
		}
	}
}
