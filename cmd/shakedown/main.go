// Command shakedown is the command-line front end of shakedown.
//
//	shakedown demo     boot a machine, run commands in it, show the results
//	shakedown run      run Starlark scenario files (see shakedown run -h)
//	shakedown doctor   check what this host needs and say what to install
//	shakedown ls       list running testbeds and their machines
//	shakedown ssh      a shell or a command in a machine of a running testbed
//	shakedown proxy    OpenSSH ProxyCommand to a machine of a running testbed
//	shakedown web      a live page of the running testbeds, on loopback
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
  web      a live page of the running testbeds: shakedown web [--addr 127.0.0.1:PORT]
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
	case "web":
		err = webCmd(os.Args[2:])
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

	t := &shakedown.RunT{RunName: "demo", Log: func(line string) {
		// Console lines ("name # ...") only with -v; the rest always.
		if *verbose || !strings.Contains(line, " # ") {
			fmt.Fprintln(os.Stderr, line)
		}
	}}
	defer t.Close()
	err := runDemo(t, *timeout, *verbose)
	if err != nil {
		t.Fail()
		return fmt.Errorf("demo failed: %w", err)
	}
	return nil
}

// runDemo boots a machine, runs a few commands in it and powers it off,
// printing what it sees.
func runDemo(t *shakedown.RunT, timeout time.Duration, verbose bool) error {
	tb, err := shakedown.NewE(t, shakedown.Options{Timeout: timeout, QuietConsole: !verbose})
	if err != nil {
		return err
	}
	began := time.Now()
	m, err := tb.MachineE("demo", shakedown.MachineConfig{
		Files: []shakedown.File{{Guest: "/etc/motd", Data: []byte("hello from a shakedown machine\n")}},
	})
	if err != nil {
		return err
	}
	if err := m.StartE(); err != nil {
		return err
	}
	fmt.Printf("machine %q up in %.1fs under %s\n", m.Name(), time.Since(began).Seconds(), tb.Accel())
	for _, cmd := range []string{
		"uname -sr",
		"cat /etc/motd",
		"hostname",
		"cat /proc/cpuinfo | grep -m1 'model name'",
		"free -m | head -2",
	} {
		out, err := m.SucceedE(cmd)
		if err != nil {
			return err
		}
		fmt.Printf("$ %s\n%s", cmd, indentOut(out))
	}
	status, _, err := m.ExecuteE("exit 3")
	if err != nil {
		return err
	}
	fmt.Printf("$ exit 3\n  (status %d)\n", status)
	if err := m.ShutdownE(); err != nil {
		return err
	}
	fmt.Printf("powered off; %.1fs in all\n", time.Since(began).Seconds())
	return nil
}

func indentOut(s string) string {
	if s == "" {
		return ""
	}
	return "  " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n  ") + "\n"
}
