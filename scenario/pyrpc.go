package scenario

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/shakedown-dev/shakedown"
	"github.com/shakedown-dev/shakedown/agentclient"
)

// pyDriver answers driver.py's requests for one run.
type pyDriver struct {
	r      *runner
	enc    *json.Encoder
	thread *starlark.Thread
	// subtests and sections open, innermost last: their ends.
	subtests []func(error)
	sections []func(error)
	// qmp holds each machine's QMP event subscription for
	// wait_for_qmp_event, from its first call to the script's end, so
	// that no event falls between two calls.
	qmp map[string]*qmpSub
}

type qmpSub struct {
	events <-chan shakedown.QMPEvent
	stop   func()
}

// serve answers requests until driver.py closes its end, and returns the
// failure it reported, if any.
func (d *pyDriver) serve(requests io.Reader) (*Error, error) {
	if err := d.hello(); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bufio.NewReader(requests))
	for {
		var req pyRequest
		if err := dec.Decode(&req); err != nil {
			if errors.Is(err, io.EOF) {
				return nil, nil
			}
			return nil, fmt.Errorf("reading driver.py's request: %w", err)
		}
		if req.Op == "fail" {
			d.answer(req.ID, nil, nil)
			pos := syntax.MakePosition(&req.File, int32(req.Line), 0)
			first, _, _ := strings.Cut(req.Message, "\n")
			return &Error{Pos: pos, Msg: first, Detail: strings.TrimRight(req.Traceback, "\n")}, nil
		}
		v, err := d.handle(req)
		d.answer(req.ID, v, err)
	}
}

// hello tells driver.py the machines, the networks and the verbs.
func (d *pyDriver) hello() error {
	var ms []string
	for _, mv := range d.r.machines {
		ms = append(ms, mv.decl.Name)
	}
	vlans := []map[string]any{}
	for _, nv := range d.r.networks {
		vlans = append(vlans, map[string]any{"name": nv.name, "number": nv.n.Number()})
	}
	return d.enc.Encode(map[string]any{"machines": ms, "vlans": vlans, "verbs": pythonVerbs()})
}

// answer sends a request's result; errors of unpacking (a wrong argument)
// are "args", timeouts "timeout".
func (d *pyDriver) answer(id int, v any, err error) {
	a := pyAnswer{ID: id, Value: v}
	if err != nil {
		msg := err.Error()
		a.Error = &msg
		var se *stepError
		switch {
		case errors.As(err, &se) && errors.Is(se.err, shakedown.ErrTimeout):
			a.Kind = "timeout"
		case errors.As(err, &se):
		case errors.As(err, new(argError)):
			a.Kind = "args"
		}
	}
	d.enc.Encode(a)
}

// argError is an error in a request's arguments, which driver.py raises
// as a TypeError.
type argError struct{ error }

func (e argError) Unwrap() error { return e.error }

func (d *pyDriver) handle(req pyRequest) (any, error) {
	r := d.r
	switch req.Op {
	case "verb":
		return d.verb(req)
	case "start_all":
		_, err := r.startAll(d.thread, starlark.NewBuiltin("start_all", r.startAll), nil, nil)
		return nil, err
	case "subtest":
		if req.Begin {
			d.subtests = append(d.subtests, r.beginSubtest(req.Name))
			return nil, nil
		}
		return nil, popEnd(&d.subtests, req.Error)
	case "section":
		if req.Begin {
			d.sections = append(d.sections, r.log.Section(req.Title))
			return nil, nil
		}
		return nil, popEnd(&d.sections, req.Error)
	case "log":
		r.log.Printf("%s", req.Message)
		return nil, nil
	case "serial":
		r.serial.Store(req.On)
		return nil, nil
	}
	return nil, fmt.Errorf("driver.py asked for %q, which this shakedown does not know", req.Op)
}

// popEnd ends the innermost open subtest or section with the error
// driver.py saw, if any.
func popEnd(open *[]func(error), errText *string) error {
	n := len(*open)
	if n == 0 {
		return errors.New("no subtest or section is open")
	}
	end := (*open)[n-1]
	*open = (*open)[:n-1]
	var err error
	if errText != nil {
		err = errors.New(*errText)
	}
	end(err)
	return nil
}

// verb runs a machine verb as Starlark's call of it would.
func (d *pyDriver) verb(req pyRequest) (any, error) {
	mv := d.r.byName[req.Machine]
	if mv == nil {
		return nil, argError{fmt.Errorf("no machine %q", req.Machine)}
	}
	if req.Verb == "next_qmp_event" {
		return d.nextQMPEvent(mv, req)
	}
	v, ok := verbs[req.Verb]
	if !ok {
		return nil, argError{errors.New(unknownVerb(req.Machine, req.Verb))}
	}
	var args starlark.Tuple
	for _, a := range req.Args {
		sv, err := toStarlark(a)
		if err != nil {
			return nil, argError{fmt.Errorf("%s.%s: %v", req.Machine, req.Verb, err)}
		}
		args = append(args, sv)
	}
	var kwargs []starlark.Tuple
	for _, k := range slices.Sorted(maps.Keys(req.Kwargs)) {
		sv, err := toStarlark(req.Kwargs[k])
		if err != nil {
			return nil, argError{fmt.Errorf("%s.%s: %s: %v", req.Machine, req.Verb, k, err)}
		}
		kwargs = append(kwargs, starlark.Tuple{starlark.String(k), sv})
	}
	out, err := d.r.verb(d.thread, mv, req.Machine+"."+req.Verb, v, args, kwargs)
	d.watchQMP(mv)
	if err != nil {
		var se *stepError
		if !errors.As(err, &se) && !errors.Is(err, errors.ErrUnsupported) {
			err = argError{err}
		}
		return nil, err
	}
	return fromStarlark(out)
}

// driverShell makes cmd run as the NixOS driver runs a script's commands:
// under bash with set -euo pipefail, so that pipelines fail when a stage
// does and bash's time and arrays work. A guest without bash (an
// initramfs machine without the bash package) runs it under its sh with
// the same options, which busybox's ash has.
func driverShell(cmd string) string {
	script := "set -euo pipefail; " + cmd
	return "command -v bash >/dev/null && exec bash -c " + agentclient.ShellQuote(script) + "; " + script
}

// nextQMPEvent is the next event of the machine's QEMU since the script
// first asked, within timeout=: driver.py's wait_for_qmp_event calls it
// until its filter, a Python function, accepts one.
func (d *pyDriver) nextQMPEvent(mv *machineValue, req pyRequest) (any, error) {
	fail := func(err error) (any, error) {
		return nil, &stepError{verb: "wait_for_qmp_event", msg: err.Error(), err: err}
	}
	d.watchQMP(mv)
	sub := d.qmp[req.Machine]
	if sub == nil {
		return fail(fmt.Errorf("%w: the machine is not running", shakedown.ErrNotRunning))
	}
	timeout := shakedown.DefaultWait
	if s, ok := req.Kwargs["timeout"].(float64); ok && s > 0 {
		timeout = time.Duration(s * float64(time.Second))
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case e, ok := <-sub.events:
		if !ok {
			delete(d.qmp, req.Machine) // the next boot's events are another subscription's
			return fail(fmt.Errorf("%w: QEMU exited", shakedown.ErrMachineDied))
		}
		return eventMap(e)
	case <-t.C:
		return fail(fmt.Errorf("%w: no QMP event within %v", shakedown.ErrTimeout, timeout))
	}
}

// watchQMP subscribes to a running machine's QMP events once, from its
// first verb on, so that wait_for_qmp_event sees what the verbs before it
// caused, as the driver's queued QMP messages do.
func (d *pyDriver) watchQMP(mv *machineValue) {
	if d.qmp == nil {
		d.qmp = map[string]*qmpSub{}
	}
	if d.qmp[mv.decl.Name] != nil || !mv.m.IsUp() {
		return
	}
	if events, stop, err := mv.m.QMPEventsE(); err == nil {
		d.qmp[mv.decl.Name] = &qmpSub{events: events, stop: stop}
	}
}

// close ends what the script left open.
func (d *pyDriver) close() {
	for _, s := range d.qmp {
		s.stop()
	}
	for len(d.sections) > 0 {
		msg := "the script ended inside it"
		popEnd(&d.sections, &msg)
	}
	for len(d.subtests) > 0 {
		msg := "the script ended inside it"
		popEnd(&d.subtests, &msg)
	}
}

// toStarlark converts a JSON value to Starlark's.
func toStarlark(v any) (starlark.Value, error) {
	switch v := v.(type) {
	case nil:
		return starlark.None, nil
	case bool:
		return starlark.Bool(v), nil
	case float64:
		if v == float64(int64(v)) && v < 1<<53 && v > -(1<<53) {
			return starlark.MakeInt64(int64(v)), nil
		}
		return starlark.Float(v), nil
	case string:
		return starlark.String(v), nil
	case []any:
		l := make([]starlark.Value, len(v))
		for i, e := range v {
			sv, err := toStarlark(e)
			if err != nil {
				return nil, err
			}
			l[i] = sv
		}
		return starlark.NewList(l), nil
	case map[string]any:
		d := starlark.NewDict(len(v))
		for _, k := range slices.Sorted(maps.Keys(v)) {
			sv, err := toStarlark(v[k])
			if err != nil {
				return nil, err
			}
			d.SetKey(starlark.String(k), sv)
		}
		return d, nil
	}
	return nil, fmt.Errorf("unsupported value %T", v)
}

// fromStarlark converts a verb's result to JSON's.
func fromStarlark(v starlark.Value) (any, error) {
	switch v := v.(type) {
	case starlark.NoneType:
		return nil, nil
	case starlark.Bool:
		return bool(v), nil
	case starlark.Int:
		i, ok := v.Int64()
		if !ok {
			return nil, fmt.Errorf("integer %v out of range", v)
		}
		return i, nil
	case starlark.Float:
		return float64(v), nil
	case starlark.String:
		return string(v), nil
	case starlark.Tuple:
		return listFrom(v)
	case *starlark.List:
		var l []starlark.Value
		for i := range v.Len() {
			l = append(l, v.Index(i))
		}
		return listFrom(l)
	case *starlark.Dict:
		m := map[string]any{}
		for _, kv := range v.Items() {
			k, ok := starlark.AsString(kv[0])
			if !ok {
				return nil, fmt.Errorf("dict key %v is not a string", kv[0])
			}
			e, err := fromStarlark(kv[1])
			if err != nil {
				return nil, err
			}
			m[k] = e
		}
		return m, nil
	}
	return v.String(), nil
}

func listFrom(vs []starlark.Value) ([]any, error) {
	out := []any{}
	for _, e := range vs {
		j, err := fromStarlark(e)
		if err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	return out, nil
}

// lineWriter hands what it is written to emit, line by line.
type lineWriter struct {
	mu   sync.Mutex
	buf  []byte
	emit func(string)
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := slices.Index(w.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		w.emit(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
}

// flush emits a last line without its newline.
func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.emit(string(w.buf))
		w.buf = nil
	}
}
