package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/shakedown-dev/shakedown"
	"github.com/shakedown-dev/shakedown/scenario"
)

// interactive is `shakedown run --interactive FILE.star`: boot the
// scenario's machines and read Starlark from the terminal with them bound.
func interactive(path string, opts scenario.RunOptions, color bool) error {
	sc, err := scenario.Load(path)
	if err != nil {
		return err
	}
	stdin := int(os.Stdin.Fd())
	var lines func(prompt string) ([]byte, error)
	var out io.Writer = os.Stdout
	var tm *term.Terminal
	restoreTerm := func() {}
	if term.IsTerminal(stdin) {
		tm = term.NewTerminal(struct {
			io.Reader
			io.Writer
		}{os.Stdin, os.Stdout}, ">>> ")
		if w, h, err := term.GetSize(stdin); err == nil {
			tm.SetSize(w, h)
		}
		// The terminal redraws the prompt around lines printed while
		// one is being edited, such as the log's.
		out = tm
		restore, err := rawWithSignals(stdin)
		if err != nil {
			return err
		}
		restoreTerm = restore
		defer restore()
		lines = func(prompt string) ([]byte, error) {
			tm.SetPrompt(prompt)
			line, err := tm.ReadLine()
			if err != nil {
				return nil, err
			}
			return []byte(line + "\n"), nil
		}
	} else {
		br := bufio.NewReader(os.Stdin)
		lines = func(prompt string) ([]byte, error) {
			fmt.Print(prompt)
			return br.ReadBytes('\n')
		}
	}
	opts.Log = &scenario.Log{W: out, Color: color, Steps: true}

	sess, err := sc.Open(opts)
	if tm != nil {
		tm.AutoCompleteCallback = completer(sess)
	}
	if err == nil && sc.Python != "" {
		// The scenario's test is Python: Python's own prompt, on the
		// terminal as it was.
		if tm != nil {
			restoreTerm()
		}
		fmt.Fprintf(os.Stdout, "machines %s are up; their run directory is %s\n", strings.Join(sess.Machines(), ", "), sess.OutputDir())
		fmt.Fprintf(os.Stdout, "From another terminal: shakedown ssh %s/MACHINE\n", filepath.Base(sess.OutputDir()))
		if err := sess.Python(os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stdout, err)
		}
	} else if err == nil {
		fmt.Fprintf(out, "machines %s are up; their run directory is %s\n", strings.Join(sess.Machines(), ", "), sess.OutputDir())
		fmt.Fprintf(out, "Starlark with the scenario's names bound (test() runs its test); Tab completes; Ctrl-D ends.\n")
		fmt.Fprintf(out, "From another terminal: shakedown ssh %s/MACHINE\n", filepath.Base(sess.OutputDir()))
		for {
			prompt := ">>> "
			v, err := sess.Eval(func() ([]byte, error) {
				line, err := lines(prompt)
				prompt = "... "
				return line, err
			})
			if errors.Is(err, io.EOF) {
				fmt.Fprintln(out)
				break
			}
			if err != nil {
				fmt.Fprintln(out, err)
				continue
			}
			if v != nil {
				fmt.Fprintln(out, v)
			}
		}
	}
	res := sess.Close()
	if !res.Passed() {
		return fmt.Errorf("%s: %s", path, res.Summary())
	}
	return nil
}

// rawWithSignals puts the terminal in raw mode for line editing, as
// term.MakeRaw does, but keeps ISIG: Ctrl-C stays SIGINT, at the prompt
// and during a step alike, and the testbed's handler stops every machine
// and ends shakedown within seconds. The terminal is restored on the way
// out, that signal included.
func rawWithSignals(fd int) (restore func(), err error) {
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, err
	}
	raw := *old
	raw.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	raw.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.IEXTEN
	raw.Cflag &^= unix.CSIZE | unix.PARENB
	raw.Cflag |= unix.CS8
	raw.Cc[unix.VMIN] = 1
	raw.Cc[unix.VTIME] = 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &raw); err != nil {
		return nil, err
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case <-sig:
			unix.IoctlSetTermios(fd, unix.TCSETS, old)
		case <-done:
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			signal.Stop(sig)
			close(done)
			unix.IoctlSetTermios(fd, unix.TCSETS, old)
		})
	}, nil
}

// completer completes names and verbs at the end of the line on Tab: the
// only completion is filled in; several are listed and their common
// prefix filled in.
func completer(sess *scenario.Session) func(line string, pos int, key rune) (string, int, bool) {
	return func(line string, pos int, key rune) (string, int, bool) {
		if key != '\t' || pos != len(line) {
			return "", 0, false
		}
		cands := sess.Complete(line)
		switch len(cands) {
		case 0:
			return "", 0, false
		case 1:
			return cands[0], len(cands[0]), true
		}
		prefix := cands[0]
		for _, c := range cands[1:] {
			for !strings.HasPrefix(c, prefix) {
				prefix = prefix[:len(prefix)-1]
			}
		}
		if prefix == line {
			return "", 0, false
		}
		return prefix, len(prefix), true
	}
}

// holdSignalWait bounds how long hold waits for the testbed's signal
// handler to end the process after Ctrl-C.
const holdSignalWait = 30 * time.Second

// hold is -k/--keep: once a scenario ends, its machines stay up until the
// user presses Enter (on a terminal) or Ctrl-C, which stops them and ends
// shakedown at once.
func hold(tb *shakedown.Testbed, err error) {
	how := "passed"
	if err != nil {
		how = "failed"
	}
	var names []string
	for _, m := range tb.Machines() {
		names = append(names, m.Name())
	}
	bed := filepath.Base(tb.OutputDir())
	fmt.Fprintf(os.Stderr, "scenario %s; keeping %s up (-k): shakedown ssh %s/MACHINE reaches them\n", how, strings.Join(names, ", "), bed)
	stdin := int(os.Stdin.Fd())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)
	enter := make(chan struct{})
	if term.IsTerminal(stdin) {
		fmt.Fprintln(os.Stderr, "press Enter to stop them and go on, Ctrl-C to stop them and quit")
		go func() {
			bufio.NewReader(os.Stdin).ReadString('\n')
			close(enter)
		}()
	} else {
		fmt.Fprintln(os.Stderr, "Ctrl-C (SIGINT) stops them and quits")
	}
	select {
	case <-enter:
	case <-sig:
		// The testbed's own handler stops the machines and ends the
		// process by the signal; wait for it.
		time.Sleep(holdSignalWait)
		os.Exit(130)
	}
}
