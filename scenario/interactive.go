package scenario

import (
	"errors"
	"io"
	"sort"
	"strings"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
)

// Session is an interactive run of a scenario, the equivalent of the NixOS
// driverInteractive: the scenario's declarations are made, its machines
// booted, and Starlark read from the user is evaluated with them bound.
// Open makes it; Close must be called, whatever Open returned.
type Session struct {
	r       *runner
	globals starlark.StringDict
	end     func(error)
	err     error // why Open failed
}

// Open declares the scenario's networks and machines (its top level up to
// the first step, whose steps it does not run: the user calls test() or
// anything else), makes the testbed and boots every machine. On an error
// the session is still returned, for Close; Eval then refuses.
func (sc *Scenario) Open(opts RunOptions) (*Session, error) {
	r := newRunner(sc, loading, opts)
	s := &Session{r: r, end: r.begin()}
	globals, err := sc.prog.Init(r.newThread(), r.predeclared)
	if err != nil && !errors.Is(err, errStepsBegin) {
		s.err = asError(err)
		return s, s.err
	}
	r.mode = running
	s.globals = starlark.StringDict{}
	for k, v := range r.predeclared {
		s.globals[k] = v
	}
	for k, v := range globals {
		s.globals[k] = v
	}
	if _, err := r.startAll(r.thread, starlark.NewBuiltin("start_all", nil), nil, nil); err != nil {
		s.err = asError(err)
		return s, s.err
	}
	return s, nil
}

// Machines names the machines bound, in declaration order.
func (s *Session) Machines() []string {
	var names []string
	for _, mv := range s.r.machines {
		names = append(names, mv.decl.Name)
	}
	return names
}

// OutputDir is the testbed's run directory, "" before it exists.
func (s *Session) OutputDir() string {
	if s.r.tb == nil {
		return ""
	}
	return s.r.tb.OutputDir()
}

// Eval reads one statement (with its indented block, if any) through
// readline, which returns lines with their newline and io.EOF at the end
// of input, and executes it. The value of a lone expression other than
// None is returned, and kept as _. It returns io.EOF when the input ends
// before a statement. Errors are *Error, with the line that failed.
func (s *Session) Eval(readline func() ([]byte, error)) (starlark.Value, error) {
	if s.err != nil {
		return nil, s.err
	}
	eof := false
	read := func() ([]byte, error) {
		line, err := readline()
		if errors.Is(err, io.EOF) {
			eof = true
		}
		return line, err
	}
	f, err := fileOptions.ParseCompoundStmt("<stdin>", read)
	if err != nil {
		if eof {
			return nil, io.EOF
		}
		return nil, asError(err)
	}
	thread := s.r.thread
	if len(f.Stmts) == 1 {
		if stmt, ok := f.Stmts[0].(*syntax.ExprStmt); ok {
			v, err := starlark.EvalExprOptions(f.Options, thread, stmt.X, s.globals)
			if err != nil {
				return nil, asError(err)
			}
			s.globals["_"] = v
			if v == starlark.None {
				return nil, nil
			}
			return v, nil
		}
	}
	if err := starlark.ExecREPLChunk(f, thread, s.globals); err != nil {
		return nil, asError(err)
	}
	return nil, nil
}

// Complete returns the completions of the name or attribute ending line:
// globals and builtins, or a machine's or network's verbs after a dot.
func (s *Session) Complete(line string) []string {
	start := len(line)
	for start > 0 && (isIdent(line[start-1]) || line[start-1] == '.') {
		start--
	}
	word := line[start:]
	var cands []string
	if obj, attr, ok := strings.Cut(word, "."); ok {
		v, found := s.globals[obj]
		if !found || strings.Contains(attr, ".") {
			return nil
		}
		if ha, ok := v.(starlark.HasAttrs); ok {
			for _, n := range ha.AttrNames() {
				cands = append(cands, obj+"."+n)
			}
		}
	} else {
		for n := range s.globals {
			cands = append(cands, n)
		}
		for n := range starlark.Universe {
			cands = append(cands, n)
		}
	}
	var out []string
	for _, c := range cands {
		if strings.HasPrefix(c, word) {
			out = append(out, line[:start]+c)
		}
	}
	sort.Strings(out)
	return out
}

func isIdent(c byte) bool {
	return c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// Close ends the session: the machines stop (after RunOptions.Hold
// returns, if set) and the result says whether every step passed.
func (s *Session) Close() *Result {
	res := s.r.finish(s.err, s.end)
	if s.err == nil && s.r.t.Failed() && res.Err == nil {
		// A step failed at the prompt: the user saw it; the run still
		// did not pass.
		res.Err = &Error{Msg: "a step failed during the session"}
		res.Cases[0].Err = res.Err
	}
	return res
}
