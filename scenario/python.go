package scenario

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/shakedown-dev/shakedown"
)

// A scenario's test may be a Python 3 script in the NixOS test driver's
// dialect, run unchanged by the host's python3: python_test("test.py")
// in the .star file that declares the machines. The script runs in
// driver.py, which binds the driver's globals and sends each verb over a
// pipe to the runner, which runs it as a Starlark call of the same verb
// would run (runner.verb): one implementation for both front ends.

//go:embed python/driver.py
var driverPy []byte

// pythonBinary is the interpreter; Debian's python3 package has it.
const pythonBinary = "python3"

// pythonStopWait is how long python gets to end after its pipe closes,
// before it is killed.
const pythonStopWait = 5 * time.Second

// pythonTestBuiltin is python_test(path): the test is the Python script
// at path (relative to the scenario's directory), instead of test().
func (r *runner) pythonTestBuiltin(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var p string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "path", &p); err != nil {
		return nil, err
	}
	host := r.sc.hostPath(p)
	if r.pythonTest != "" {
		return nil, fmt.Errorf("%s: the test is %s already: a scenario has one", b.Name(), r.pythonTest)
	}
	r.pythonTest = host
	if r.mode == running {
		return starlark.None, nil // the load pass checked it and set sc.Python
	}
	if _, err := os.Stat(host); err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	if _, err := exec.LookPath(pythonBinary); err != nil {
		return nil, fmt.Errorf("%s: %s not found: apt-get install python3", b.Name(), pythonBinary)
	}
	r.sc.Python = host
	return starlark.None, nil
}

// writeDriver writes driver.py into dir and returns its path.
func writeDriver(dir string) (string, error) {
	p := filepath.Join(dir, "shakedown-driver.py")
	return p, os.WriteFile(p, driverPy, 0o644)
}

// pythonVerbs are the names a script may call on a machine: every verb,
// and the machine's name.
func pythonVerbs() []string {
	return slices.Sorted(maps.Keys(verbs))
}

// checkPython has python3 compile the script and look for verbs that do
// not exist on the declared machines, so that a typo fails before
// anything boots, at its line.
func (sc *Scenario) checkPython(machines []string) error {
	dir, err := os.MkdirTemp("", "shakedown-check-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	driver, err := writeDriver(dir)
	if err != nil {
		return err
	}
	spec, _ := json.Marshal(map[string]any{"machines": machines, "verbs": pythonVerbs()})
	cmd := exec.Command(pythonBinary, driver, "--check", sc.Python)
	cmd.Env = append(os.Environ(), "SHAKEDOWN_CHECK="+string(spec))
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return fmt.Errorf("check %s: %v: %s", sc.Python, err, ee.Stderr)
		}
		return fmt.Errorf("check %s: %w", sc.Python, err)
	}
	if len(strings.TrimSpace(string(out))) == 0 {
		return nil
	}
	var found struct {
		Line, Col int
		Msg       string
	}
	if err := json.Unmarshal(out, &found); err != nil {
		return fmt.Errorf("check %s: %q: %w", sc.Python, out, err)
	}
	return &Error{Pos: syntax.MakePosition(&sc.Python, int32(found.Line), int32(found.Col)), Msg: found.Msg}
}

// pyRequest is one request of driver.py.
type pyRequest struct {
	ID      int            `json:"id"`
	Op      string         `json:"op"`
	Machine string         `json:"machine"`
	Verb    string         `json:"verb"`
	Args    []any          `json:"args"`
	Kwargs  map[string]any `json:"kwargs"`
	// subtest, section, log, serial, sleep, fail:
	Name      string  `json:"name"`
	Title     string  `json:"title"`
	Begin     bool    `json:"begin"`
	Error     *string `json:"error"`
	Message   string  `json:"message"`
	On        bool    `json:"on"`
	File      string  `json:"file"`
	Line      int     `json:"line"`
	Traceback string  `json:"traceback"`
}

// pyAnswer is the runner's answer: a value, or an error of a kind
// driver.py raises as TypeError (args), RequestTimedOut (timeout) or
// ShakedownError.
type pyAnswer struct {
	ID    int     `json:"id"`
	Value any     `json:"value"`
	Error *string `json:"error"`
	Kind  string  `json:"kind,omitempty"`
}

// runPython runs the scenario's Python test and returns its failure.
func (r *runner) runPython() error {
	abs, err := filepath.Abs(r.sc.Python)
	if err != nil {
		return err
	}
	return r.python([]string{abs, r.sc.Python}, nil, nil)
}

// Python runs Python's interactive interpreter with the NixOS driver's
// globals bound to the session's machines, on in and out (a terminal):
// the driverInteractive of a scenario whose test is a Python script. It
// returns when the interpreter ends (Ctrl-D, exit()).
func (s *Session) Python(in io.Reader, out io.Writer) error {
	if s.err != nil {
		return s.err
	}
	banner := fmt.Sprintf("Python %s with the NixOS driver's globals bound: %s (Ctrl-D ends)", pythonBinary, strings.Join(s.Machines(), ", "))
	return s.r.python([]string{"--interactive", banner}, in, out)
}

// python runs driver.py with args and serves its requests: with in and
// out nil, its output goes to the log, line by line.
func (r *runner) python(args []string, in io.Reader, term io.Writer) error {
	tb, err := r.testbed()
	if err != nil {
		return err
	}
	driver, err := writeDriver(tb.OutputDir())
	if err != nil {
		return err
	}
	reqR, reqW, err := os.Pipe()
	if err != nil {
		return err
	}
	ansR, ansW, err := os.Pipe()
	if err != nil {
		reqR.Close()
		reqW.Close()
		return err
	}
	defer reqR.Close()
	defer ansW.Close()
	cmd := exec.Command(pythonBinary, append([]string{"-u", driver}, args...)...)
	cmd.ExtraFiles = []*os.File{reqW, ansR} // fds 3 and 4
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
	// Python dies with the runner, and Ctrl-C reaches it through the
	// testbed's context (below), not through the terminal; at the
	// interpreter's prompt it is the terminal's, as Python's own.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: term == nil, Pdeathsig: syscall.SIGKILL}
	out := &lineWriter{emit: func(line string) { r.log.Printf("%s", line) }}
	cmd.Stdout, cmd.Stderr = out, out
	if term != nil {
		cmd.Stdin, cmd.Stdout, cmd.Stderr = in, term, term
	}
	if err := cmd.Start(); err != nil {
		reqW.Close()
		ansR.Close()
		return fmt.Errorf("start %s: %w", pythonBinary, err)
	}
	reqW.Close()
	ansR.Close()
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	ctx := tb.Context()
	// The testbed's end (its deadline, Ctrl-C) stops the script at once.
	stop := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			cmd.Process.Kill()
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		case <-stop:
		}
	}()
	defer close(stop)

	r.shell = driverShell
	py := &pyDriver{r: r, enc: json.NewEncoder(ansW), thread: &starlark.Thread{Name: r.sc.Python}}
	failure, loopErr := py.serve(reqR)
	ansW.Close()
	var exitErr error
	select {
	case exitErr = <-waited:
	case <-time.After(pythonStopWait):
		cmd.Process.Kill()
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		exitErr = <-waited
	}
	out.flush()
	py.close()
	switch {
	case context.Cause(ctx) != nil && ctx.Err() != nil:
		return fmt.Errorf("python test stopped: %w", context.Cause(ctx))
	case failure != nil:
		return failure
	case loopErr != nil:
		return fmt.Errorf("python test: %w", loopErr)
	case exitErr != nil:
		return &Error{Pos: syntax.MakePosition(&r.sc.Python, 1, 1), Msg: fmt.Sprintf("python test: %s %v (its output is in the log)", pythonBinary, exitErr)}
	}
	return nil
}

// RunPython runs a NixOS-style Python test script against the machines of
// a testbed declared in Go, as python_test() does for a scenario's: each
// machine is bound by its name (vlans is empty: Go's networks are the
// test's own). The script is checked first; its failure is an *Error at
// its line. log, if not nil, receives the steps.
func RunPython(tb *shakedown.Testbed, path string, log *Log) error {
	sc := &Scenario{Path: path, Python: path}
	r := newRunner(sc, running, RunOptions{Log: log})
	r.tb = tb
	var names []string
	for _, m := range tb.Machines() {
		mv := &machineValue{r: r, decl: Declaration{Name: m.Name()}, m: m}
		r.machines = append(r.machines, mv)
		r.byName[m.Name()] = mv
		names = append(names, m.Name())
	}
	if err := sc.checkPython(names); err != nil {
		return err
	}
	if err := r.runPython(); err != nil {
		return asError(err)
	}
	if r.steps == 0 {
		return &Error{Pos: syntax.MakePosition(&sc.Python, 1, 1), Msg: "the script ran no steps: nothing was tested"}
	}
	return nil
}
