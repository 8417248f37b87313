package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"

	"golang.org/x/crypto/ssh"
	"golang.org/x/term"

	"github.com/shakedown-dev/shakedown"
	"github.com/shakedown-dev/shakedown/control"
)

// `shakedown ls`, `shakedown ssh` and `shakedown proxy` reach the machines
// of running testbeds (of go test, or of `shakedown run`) through the
// control socket each testbed serves in its run directory.

const lsUsage = `usage: shakedown ls [--out DIR]

Lists the running testbeds under DIR ($SHAKEDOWN_OUTPUT, else
$TMPDIR/shakedown) and their machines. A testbed is named by its run
directory; its machines are reached with shakedown ssh TESTBED/MACHINE.
`

const sshUsage = `usage: shakedown ssh [--out DIR] [TESTBED/]MACHINE [COMMAND...]

Runs COMMAND in MACHINE of a running testbed, or opens a shell there, over
the testbed's control socket, with a terminal when stdin is one. Exits with
the command's status. TESTBED (a run directory's name, or a unique prefix
of it) is needed only when several running testbeds have such a machine.
`

const proxyUsage = `usage: shakedown proxy [--out DIR] [TESTBED/]MACHINE

Connects stdin and stdout to the SSH server of MACHINE's testbed, for
OpenSSH's ProxyCommand: the machine is named by the host, whatever the
user, and no key is needed:

  ssh -o ProxyCommand='shakedown proxy %h' -o StrictHostKeyChecking=no \
      -o UserKnownHostsFile=/dev/null root@web
  scp -o ProxyCommand='shakedown proxy %h' ... file root@web:/tmp/

or once in ~/.ssh/config:

  Host *.shakedown
    ProxyCommand shakedown proxy %h
    StrictHostKeyChecking no
    UserKnownHostsFile /dev/null
    User root

after which ssh web.shakedown works (the suffix .shakedown is dropped).
`

// lsCmd is `shakedown ls`.
func lsCmd(args []string) error {
	fs := flag.NewFlagSet("ls", flag.ExitOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), lsUsage); fs.PrintDefaults() }
	out := fs.String("out", "", "the parent of run directories (default $SHAKEDOWN_OUTPUT, else $TMPDIR/shakedown)")
	fs.Parse(args)
	if fs.NArg() > 0 {
		fs.Usage()
		os.Exit(2)
	}
	beds, err := control.Running(*out)
	if err != nil {
		return err
	}
	if len(beds) == 0 {
		fmt.Fprintln(os.Stderr, "no running testbeds")
		return nil
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(w, "TESTBED\tPID\tTEST\tMACHINES")
	for _, b := range beds {
		var ms []string
		for _, m := range b.Machines {
			s := m.Name
			if !m.Running {
				s += " (stopped)"
			}
			ms = append(ms, s)
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\n", filepath.Base(b.Dir), b.PID, b.Name, strings.Join(ms, ", "))
	}
	return w.Flush()
}

// target is a machine of a running testbed.
type target struct {
	bed     control.State
	machine string
}

// findTarget resolves [TESTBED/]MACHINE among the running testbeds. A
// trailing ".shakedown" is dropped, for ssh_config Host patterns.
func findTarget(parent, spec string) (target, error) {
	spec = strings.TrimSuffix(spec, ".shakedown")
	bedName, machine, hasBed := strings.Cut(spec, "/")
	if !hasBed {
		bedName, machine = "", spec
	}
	if machine == "" {
		return target{}, fmt.Errorf("%q: want [TESTBED/]MACHINE", spec)
	}
	beds, err := control.Running(parent)
	if err != nil {
		return target{}, err
	}
	var found []target
	for _, b := range beds {
		if bedName != "" && !strings.HasPrefix(filepath.Base(b.Dir), bedName) {
			continue
		}
		for _, m := range b.Machines {
			if m.Name == machine {
				found = append(found, target{bed: b, machine: machine})
			}
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		if len(beds) == 0 {
			return target{}, fmt.Errorf("no running testbeds under %s", shownParent(parent))
		}
		return target{}, fmt.Errorf("no running testbed has a machine %q (shakedown ls lists them)", spec)
	}
	var names []string
	for _, f := range found {
		names = append(names, filepath.Base(f.bed.Dir)+"/"+machine)
	}
	return target{}, fmt.Errorf("%q is in several running testbeds: name one of %s", spec, strings.Join(names, ", "))
}

func shownParent(parent string) string {
	if parent != "" {
		return parent
	}
	if d := os.Getenv(shakedown.EnvOutput); d != "" {
		return d
	}
	return filepath.Join(os.TempDir(), "shakedown")
}

// dialTarget opens an SSH connection to the target's machine.
func dialTarget(tg target) (*ssh.Client, error) {
	conn, err := net.Dial("unix", tg.bed.Socket)
	if err != nil {
		return nil, fmt.Errorf("testbed %s: %w", filepath.Base(tg.bed.Dir), err)
	}
	sc, chans, reqs, err := ssh.NewClientConn(conn, "shakedown", &ssh.ClientConfig{
		User: tg.machine,
		// The socket is the user's own (mode 0600, checked by uid).
		HostKeyCallback: ssh.InsecureIgnoreHostKey(),
	})
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("testbed %s: %w", filepath.Base(tg.bed.Dir), err)
	}
	return ssh.NewClient(sc, chans, reqs), nil
}

// exitError carries a remote command's exit status out of main.
type exitError struct{ status int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.status) }

// sshCmd is `shakedown ssh`.
func sshCmd(args []string) error {
	fs := flag.NewFlagSet("ssh", flag.ExitOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), sshUsage); fs.PrintDefaults() }
	out := fs.String("out", "", "the parent of run directories (default $SHAKEDOWN_OUTPUT, else $TMPDIR/shakedown)")
	fs.Parse(args)
	if fs.NArg() < 1 {
		fs.Usage()
		os.Exit(2)
	}
	tg, err := findTarget(*out, fs.Arg(0))
	if err != nil {
		return err
	}
	client, err := dialTarget(tg)
	if err != nil {
		return err
	}
	defer client.Close()
	s, err := client.NewSession()
	if err != nil {
		return err
	}
	defer s.Close()
	s.Stdout, s.Stderr = os.Stdout, os.Stderr
	command := strings.Join(fs.Args()[1:], " ")

	stdin := int(os.Stdin.Fd())
	if term.IsTerminal(stdin) {
		cols, rows, err := term.GetSize(stdin)
		if err != nil {
			cols, rows = 80, 24
		}
		t := os.Getenv("TERM")
		if t == "" {
			t = "xterm"
		}
		if err := s.RequestPty(t, rows, cols, ssh.TerminalModes{ssh.ECHO: 1}); err != nil {
			return err
		}
		old, err := term.MakeRaw(stdin)
		if err != nil {
			return err
		}
		defer term.Restore(stdin, old)
		winch := make(chan os.Signal, 1)
		signal.Notify(winch, syscall.SIGWINCH)
		defer signal.Stop(winch)
		go func() {
			for range winch {
				if c, r, err := term.GetSize(stdin); err == nil {
					s.WindowChange(r, c)
				}
			}
		}()
	}
	// Stdin is copied by hand, not through s.Stdin, so that a session
	// that ends does not wait for one more line of input.
	in, err := s.StdinPipe()
	if err != nil {
		return err
	}
	go func() {
		io.Copy(in, os.Stdin)
		in.Close()
	}()
	if command == "" {
		err = s.Shell()
	} else {
		err = s.Start(command)
	}
	if err != nil {
		return err
	}
	err = s.Wait()
	var exit *ssh.ExitError
	if errors.As(err, &exit) {
		return exitError{exit.ExitStatus()}
	}
	return err
}

// proxyCmd is `shakedown proxy`: the header naming the machine, then the
// raw SSH stream between stdin/stdout and the control socket.
func proxyCmd(args []string) error {
	fs := flag.NewFlagSet("proxy", flag.ExitOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), proxyUsage); fs.PrintDefaults() }
	out := fs.String("out", "", "the parent of run directories (default $SHAKEDOWN_OUTPUT, else $TMPDIR/shakedown)")
	fs.Parse(args)
	if fs.NArg() != 1 {
		fs.Usage()
		os.Exit(2)
	}
	tg, err := findTarget(*out, fs.Arg(0))
	if err != nil {
		return err
	}
	conn, err := net.Dial("unix", tg.bed.Socket)
	if err != nil {
		return fmt.Errorf("testbed %s: %w", filepath.Base(tg.bed.Dir), err)
	}
	defer conn.Close()
	if _, err := fmt.Fprintf(conn, "%s%s\n", control.Header, tg.machine); err != nil {
		return err
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		io.Copy(conn, os.Stdin)
		conn.(*net.UnixConn).CloseWrite()
	}()
	// The session is over when the server closes: ssh has what it needs.
	_, err = io.Copy(os.Stdout, conn)
	return err
}
