// Command shakedown is the command-line front end of shakedown.
//
//	shakedown demo     boot a machine, run commands in it, show the results
//	shakedown run      run Starlark scenario files (see shakedown run -h)
//	shakedown doctor   check what this host needs and say what to install
//	shakedown ls       list running testbeds and their machines
//	shakedown ssh      a shell or a command in a machine of a running testbed
//	shakedown proxy    OpenSSH ProxyCommand to a machine of a running testbed
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/shakedown-dev/shakedown"
)

const usage = `usage: shakedown <command> [flags]

commands:
  demo     boot a machine under QEMU, run commands in it, power it off
  run      run Starlark scenario files: shakedown run [flags] FILE.star...
  doctor   check QEMU, KVM or TCG, the kernel package, the cache and Go
  ls       list running testbeds and their machines
  ssh      shell or command in a running machine: shakedown ssh [TESTBED/]MACHINE [CMD...]
  proxy    OpenSSH ProxyCommand: ssh -o ProxyCommand='shakedown proxy %h' root@MACHINE
  image    build, list and collect initramfs images: shakedown image build|ls|gc
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "demo":
		err = demo(os.Args[2:])
	case "doctor":
		err = doctor(os.Args[2:])
	case "run":
		err = runCmd(os.Args[2:])
	case "ls":
		err = lsCmd(os.Args[2:])
	case "ssh":
		err = sshCmd(os.Args[2:])
	case "proxy":
		err = proxyCmd(os.Args[2:])
	case "image":
		err = imageCmd(os.Args[2:])
	case "-h", "--help", "help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "shakedown: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	var exit exitError
	if errors.As(err, &exit) {
		os.Exit(exit.status)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "shakedown: %v\n", err)
		os.Exit(1)
	}
}

func demo(args []string) error {
	fs := flag.NewFlagSet("demo", flag.ExitOnError)
	verbose := fs.Bool("v", false, "stream the machine's console")
	timeout := fs.Duration("timeout", 10*time.Minute, "global deadline")
	fs.Parse(args)

	return run("demo", *verbose, func(t shakedown.T) {
		tb := shakedown.New(t, shakedown.Options{Timeout: *timeout, QuietConsole: !*verbose})
		began := time.Now()
		m := tb.Machine("demo", shakedown.MachineConfig{
			Files: []shakedown.File{{Guest: "/etc/motd", Data: []byte("hello from a shakedown machine\n")}},
		})
		m.Start()
		fmt.Printf("machine %q up in %.1fs under %s\n", m.Name(), time.Since(began).Seconds(), tb.Accel())
		for _, cmd := range []string{
			"uname -sr",
			"cat /etc/motd",
			"hostname",
			"cat /proc/cpuinfo | grep -m1 'model name'",
			"free -m | head -2",
		} {
			out := m.Succeed(cmd)
			fmt.Printf("$ %s\n%s", cmd, indentOut(out))
		}
		status, _ := m.Execute("exit 3")
		fmt.Printf("$ exit 3\n  (status %d)\n", status)
		m.Shutdown()
		fmt.Printf("powered off; %.1fs in all\n", time.Since(began).Seconds())
	})
}

func indentOut(s string) string {
	if s == "" {
		return ""
	}
	return "  " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n  ") + "\n"
}

// cliT is the T of a command-line run: Fatalf ends the run (through a
// panic that run recovers), and cleanups run when it ends, as in go test.
type cliT struct {
	name     string
	verbose  bool
	failed   bool
	cleanups []func()
}

type failNow struct{}

func (t *cliT) Helper()      {}
func (t *cliT) Name() string { return t.name }
func (t *cliT) Failed() bool { return t.failed }
func (t *cliT) Logf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	// Console lines ("name # ...") only with -v; the rest always.
	if t.verbose || !strings.Contains(msg, " # ") {
		fmt.Fprintln(os.Stderr, msg)
	}
}
func (t *cliT) Fatalf(format string, args ...any) {
	t.failed = true
	fmt.Fprintf(os.Stderr, "FAIL: "+format+"\n", args...)
	panic(failNow{})
}
func (t *cliT) Cleanup(f func()) { t.cleanups = append(t.cleanups, f) }

// run runs body like a test: cleanups always run, in reverse order.
func run(name string, verbose bool, body func(shakedown.T)) (err error) {
	t := &cliT{name: name, verbose: verbose}
	defer func() {
		r := recover()
		for i := len(t.cleanups) - 1; i >= 0; i-- {
			t.cleanups[i]()
		}
		if r != nil {
			if _, ok := r.(failNow); !ok {
				panic(r)
			}
		}
		if t.failed {
			err = errors.New(name + " failed")
		}
	}()
	body(t)
	return nil
}
