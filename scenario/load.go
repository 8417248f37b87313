package scenario

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"go.starlark.net/resolve"
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/shakedown-dev/shakedown"
)

// Scenario is a loaded scenario file, ready to run.
type Scenario struct {
	// Path is the file as given; errors and reports name it so.
	Path string
	// Machines are the machines declared before the first step, in
	// declaration order. Machines declared later (inside test(), or
	// after a top-level step) are only known when the scenario runs.
	Machines []Declaration
	// HasTest reports whether the file defines test(), which Run calls
	// after the top level.
	HasTest bool
	// TopLevelSteps reports whether the top level itself calls verbs.
	TopLevelSteps bool
	// Python is the Python test script that python_test() named, as a
	// host path; Run runs it after the top level, instead of test().
	Python string

	prog *starlark.Program
}

// Declaration is a machine as machine() declared it.
type Declaration struct {
	Name   string
	Config shakedown.MachineConfig
	// Pos is the machine() call.
	Pos syntax.Position
}

// fileOptions are the Starlark dialect of scenarios: what a NixOS test
// script needs to port over (while loops, top-level if and for, sets,
// reassigned globals). Recursion stays off: a scenario has no use for it.
var fileOptions = &syntax.FileOptions{
	Set:             true,
	While:           true,
	TopLevelControl: true,
	GlobalReassign:  true,
}

// errStepsBegin stops the load pass at the first step: what follows is the
// test, which only Run executes.
var errStepsBegin = errors.New("steps begin")

// Load reads and loads the scenario at path.
func Load(path string) (*Scenario, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load scenario: %w", err)
	}
	return LoadSource(path, src)
}

// LoadSource loads a scenario from src; path names it in errors and
// anchors its relative host paths (files=, copy_from_host). It executes
// the top level up to the first step, so that syntax errors, unknown names,
// bad machine declarations, missing host files, and wrong arguments or
// unknown verbs on the way are reported, as *Error with their position,
// before anything boots.
func LoadSource(path string, src []byte) (*Scenario, error) {
	sc := &Scenario{Path: path}
	r := newRunner(sc, loading, RunOptions{})
	f, prog, err := starlark.SourceProgramOptions(fileOptions, path, src, r.predeclared.Has)
	if err != nil {
		return nil, asError(err)
	}
	sc.prog = prog
	globals, err := prog.Init(r.newThread(), r.predeclared)
	switch {
	case errors.Is(err, errStepsBegin):
		sc.TopLevelSteps = true
	case err != nil:
		return nil, asError(err)
	}
	if fn, ok := globals["test"]; ok {
		if err := checkTest(fn); err != nil {
			return nil, err
		}
		if sc.Python != "" {
			return nil, &Error{Pos: fn.(*starlark.Function).Position(), Msg: "the test is python_test(" + sc.Python + "): a scenario has it or test(), not both"}
		}
		sc.HasTest = true
	}
	if sc.Python != "" {
		var names []string
		for _, m := range r.machines {
			names = append(names, m.decl.Name)
		}
		if err := sc.checkPython(names); err != nil {
			return nil, err
		}
		sc.HasTest = true
	}
	if !sc.HasTest && !sc.TopLevelSteps {
		return nil, &Error{Pos: syntax.MakePosition(&sc.Path, 1, 1),
			Msg: "scenario has no steps: define test() or call machine verbs at the top level"}
	}
	if err := lint(f, globals); err != nil {
		return nil, err
	}
	for _, m := range r.machines {
		sc.Machines = append(sc.Machines, m.decl)
	}
	return sc, nil
}

// checkTest makes sure test is a function Run can call without arguments.
func checkTest(v starlark.Value) error {
	fn, ok := v.(*starlark.Function)
	if !ok {
		return &Error{Msg: fmt.Sprintf("test is a %s, want a function: def test(): ...", v.Type())}
	}
	if fn.NumParams() > 0 && fn.ParamDefault(0) == nil {
		return &Error{Pos: fn.Position(), Msg: "test() must take no arguments"}
	}
	return nil
}

// lint finds verbs that do not exist on machines bound to globals, such as
// web.succed(...) inside test(), which Starlark would report only when the
// line runs, after the machines have booted.
func lint(f *syntax.File, globals starlark.StringDict) error {
	var found *Error
	syntax.Walk(f, func(n syntax.Node) bool {
		dot, ok := n.(*syntax.DotExpr)
		if !ok || found != nil {
			return found == nil
		}
		id, ok := dot.X.(*syntax.Ident)
		if !ok {
			return true
		}
		b, ok := id.Binding.(*resolve.Binding)
		if !ok || b.Scope != resolve.Global {
			return true
		}
		switch globals[id.Name].(type) {
		case *machineValue:
			if !hasAttr(dot.Name.Name) {
				found = &Error{Pos: dot.Name.NamePos, Msg: unknownVerb(id.Name, dot.Name.Name)}
			}
		case *hostValue:
			if v := globals[id.Name].(*hostValue); !v.hasAttr(dot.Name.Name) {
				msg := fmt.Sprintf("host %s has no verb .%s", id.Name, dot.Name.Name)
				if s := closest(dot.Name.Name, v.AttrNames()); s != "" {
					msg += fmt.Sprintf(" (did you mean .%s?)", s)
				}
				found = &Error{Pos: dot.Name.NamePos, Msg: msg}
			}
		case *networkValue:
			if !hasNetworkAttr(dot.Name.Name) {
				msg := fmt.Sprintf("network %s has no verb .%s", id.Name, dot.Name.Name)
				if s := closest(dot.Name.Name, (&networkValue{}).AttrNames()); s != "" {
					msg += fmt.Sprintf(" (did you mean .%s?)", s)
				}
				found = &Error{Pos: dot.Name.NamePos, Msg: msg}
			}
		}
		return true
	})
	if found != nil {
		return found
	}
	return nil
}

// dir is the directory that relative host paths in the scenario start
// from: the scenario's own.
func (sc *Scenario) dir() string { return filepath.Dir(sc.Path) }

// hostPath resolves a host path written in the scenario.
func (sc *Scenario) hostPath(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(sc.dir(), p)
}
