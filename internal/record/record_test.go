package record

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/shakedown-dev/shakedown/network"
)

func TestStepsNest(t *testing.T) {
	r := New("T")
	endScenario := r.Begin("", "scenario", true)
	endSub := r.Begin("", "subtest: a", true)
	endExec := r.Begin("web", "true", false)
	endExec(nil, "exit status 0")
	endExec(errors.New("late"), "") // a second end changes nothing
	endSub(errors.New("boom"), "")
	r.Event("", "network lan: partition")
	endScenario(nil, "")

	var v View
	r.Fill(&v)
	want := []struct {
		title   string
		parent  int
		section bool
		err     string
		note    string
	}{
		{"scenario", 0, true, "", ""},
		{"subtest: a", 1, true, "boom", ""},
		{"true", 2, false, "", "exit status 0"},
		{"network lan: partition", 1, false, "", ""},
	}
	if len(v.Steps) != len(want) {
		t.Fatalf("%d steps, want %d: %+v", len(v.Steps), len(want), v.Steps)
	}
	for i, w := range want {
		s := v.Steps[i]
		if s.ID != i+1 || s.Title != w.title || s.Parent != w.parent || s.Section != w.section || s.Err != w.err || s.Note != w.note {
			t.Errorf("step %d = %+v, want %+v", i+1, s, w)
		}
		if s.Running() {
			t.Errorf("step %d still running", i+1)
		}
	}
	if ev := v.Steps[3]; !ev.End.Equal(ev.Start) {
		t.Errorf("an event lasts: %v", ev.Duration())
	}
}

func TestFailNamesSectionAndAction(t *testing.T) {
	r := New("T")
	end := r.Begin("", "subtest: serve", true)
	r.Begin("web", "boot", false)(nil, "")
	r.Begin("db", "echo db", false)(nil, "")
	r.Begin("web", "false", false)(nil, "exit status 1")
	r.Begin("db", "echo db again", false)(nil, "")
	r.Fail("web", `command "false" failed`)
	r.Fail("", "partition: bad groups")
	end(nil, "")
	r.End(true)
	var v View
	r.Fill(&v)
	if len(v.Failures) != 2 {
		t.Fatalf("failures: %+v", v.Failures)
	}
	if f := v.Failures[0]; f.Step != 1 || f.Action != 4 || f.Machine != "web" {
		t.Errorf("machine failure = %+v, want section 1, action 4 (web's last step)", f)
	}
	if f := v.Failures[1]; f.Action != 5 {
		t.Errorf("testbed failure = %+v, want action 5 (the last step)", f)
	}
	if f, ok := v.Failing(); !ok || f.Message != "partition: bad groups" {
		t.Errorf("Failing() = %+v, %v: want the last failure", f, ok)
	}
}

func TestFailing(t *testing.T) {
	for _, tc := range []struct {
		name   string
		view   View
		ok     bool
		action int
	}{
		{"passed", View{Result: Passed, Failures: []Failure{{Message: "expected"}}}, false, 0},
		{"running", View{Result: Running, Failures: []Failure{{Message: "x"}}}, false, 0},
		{"no record", View{Result: Failed}, false, 0},
		{"from a failed step", View{Result: Failed, Steps: []Step{{ID: 1, Section: true}, {ID: 2, Parent: 1, Err: "x"}, {ID: 3, Parent: 1}}}, true, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, ok := tc.view.Failing()
			if ok != tc.ok || f.Action != tc.action {
				t.Errorf("Failing() = %+v, %v; want ok %v, action %d", f, ok, tc.ok, tc.action)
			}
		})
	}
}

func TestProgressStates(t *testing.T) {
	r := New("T")
	steps := []struct {
		step  string
		done  bool
		state string
	}{
		{"kernel", false, "building image: kernel"},
		{DownloadPrefix + "linux-image", false, "building image: kernel"},
		{DownloadPrefix + "linux-image", true, "building image: kernel"},
		{"kernel", true, "building image: kernel"},
		{StepBoot, false, Booting},
		{StepBoot, true, Booting},
		{StepUp, true, Up},
	}
	for _, s := range steps {
		r.Progress("web", s.step, s.done, nil)
		if got := r.State("web"); got != s.state {
			t.Fatalf("after %s done=%v: state %q, want %q", s.step, s.done, got, s.state)
		}
	}
	r.Progress("", "kernel", false, nil) // a build of no machine
	r.Exited("web", false)
	if got := r.State("web"); got != Stopped {
		t.Errorf("after a clean exit: %q", got)
	}
	r.Exited("web", true)
	if got := r.State("web"); got != Crashed {
		t.Errorf("after dying: %q", got)
	}
	if got := r.State("db"); got != Declared {
		t.Errorf("a machine never told of: %q", got)
	}
	var v View
	r.Fill(&v)
	var titles []string
	for _, s := range v.Steps {
		titles = append(titles, s.Title)
		if s.Running() {
			t.Errorf("step %q did not end", s.Title)
		}
	}
	if want := []string{"kernel", "boot"}; !reflect.DeepEqual(titles, want) {
		t.Errorf("steps %v, want %v (downloads and up are not steps)", titles, want)
	}
}

func TestConsoleRing(t *testing.T) {
	r := New("T")
	n := consoleKeep + consoleKeep/2
	for i := 1; i <= n; i++ {
		r.Console("web", fmt.Sprint(i))
	}
	all := r.Lines("web", 0)
	if len(all) > consoleKeep || all[len(all)-1].Seq != int64(n) || all[len(all)-1].Text != fmt.Sprint(n) {
		t.Fatalf("ring holds %d lines, last %+v", len(all), all[len(all)-1])
	}
	for i := 1; i < len(all); i++ {
		if all[i].Seq != all[i-1].Seq+1 {
			t.Fatalf("gap at %d: %d after %d", i, all[i].Seq, all[i-1].Seq)
		}
	}
	after := r.Lines("web", int64(n-3))
	if len(after) != 3 || after[0].Text != fmt.Sprint(n-2) {
		t.Errorf("Lines after %d = %+v", n-3, after)
	}
	if got := r.Lines("web", int64(n)); len(got) != 0 {
		t.Errorf("nothing after the last: %+v", got)
	}
	if got := r.Lines("db", 0); got != nil {
		t.Errorf("no console: %+v", got)
	}
	var v View
	v.Machines = []Machine{{Name: "web"}}
	r.Fill(&v)
	if v.Machines[0].ConsoleSeq != int64(n) {
		t.Errorf("ConsoleSeq %d", v.Machines[0].ConsoleSeq)
	}
}

func TestAround(t *testing.T) {
	r := New("T")
	r.Console("web", "old")
	// Lines' times are the record's; make the first one old.
	r.consoles["web"].lines[0].Time = time.Now().Add(-time.Minute)
	r.Console("web", "recent")
	got := r.Around("web", time.Now(), 10*time.Second, time.Second)
	if len(got) != 1 || got[0].Text != "recent" {
		t.Errorf("Around = %+v", got)
	}
}

func TestChangedAndEnd(t *testing.T) {
	r := New("T")
	ch := r.Changed()
	end := r.Begin("", "long", false)
	select {
	case <-ch:
	default:
		t.Fatal("Begin did not signal a change")
	}
	r.End(true)
	r.End(false) // the first result stands
	select {
	case <-r.Done():
	default:
		t.Fatal("End did not close Done")
	}
	end(nil, "") // after End: kept as End left it
	var v View
	r.Fill(&v)
	if v.Result != Failed || v.Ended.IsZero() || v.Steps[0].End != v.Ended {
		t.Errorf("after End: result %s, ended %v, step %+v", v.Result, v.Ended, v.Steps[0])
	}
}

func TestApplyFaults(t *testing.T) {
	imp := network.Impairment{LossPercent: 10}
	for _, tc := range []struct {
		name   string
		fs     network.FaultState
		states []string
		detail []string
	}{
		{"none", network.FaultState{}, []string{LinkUp, LinkBlocked, LinkUp}, []string{"", "", ""}},
		{"impaired link", network.FaultState{Links: map[string]network.Impairment{"a": imp}},
			[]string{LinkImpaired, LinkBlocked, LinkUp}, []string{"loss 10%", "", ""}},
		{"impaired pair", network.FaultState{Pairs: []network.PairFault{{From: "a", To: "h", Impairment: imp}}},
			[]string{LinkImpaired, LinkBlocked, LinkImpaired}, []string{"a→h: loss 10%", "", "a→h: loss 10%"}},
		{"partition", network.FaultState{Groups: [][]string{{"a"}, {"b"}}},
			[]string{LinkPartitioned, LinkBlocked, LinkUp}, []string{"partition group 1", "partition group 2", "in no partition group: reaches everyone"}},
		{"both", network.FaultState{Links: map[string]network.Impairment{"a": imp}, Groups: [][]string{{"a", "h"}}},
			[]string{LinkImpaired, LinkBlocked, LinkPartitioned}, []string{"loss 10%; partition group 1", "in no partition group: reaches everyone", "partition group 1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			links := []Link{{Peer: "a", State: LinkUp}, {Peer: "b", State: LinkBlocked}, {Peer: "h", Host: true, State: LinkUp}}
			groups := ApplyFaults(links, tc.fs)
			if !reflect.DeepEqual(groups, tc.fs.Groups) {
				t.Errorf("groups %v", groups)
			}
			for i, l := range links {
				if l.State != tc.states[i] || l.Detail != tc.detail[i] {
					t.Errorf("%s: %s %q, want %s %q", l.Peer, l.State, l.Detail, tc.states[i], tc.detail[i])
				}
			}
		})
	}
}

func TestTrim(t *testing.T) {
	v := View{Steps: []Step{{ID: 1}, {ID: 2}, {ID: 3}}}
	v.Trim(5)
	if len(v.Steps) != 3 || v.EarlierSteps != 0 {
		t.Fatalf("trimmed what fits: %+v", v)
	}
	v.Trim(2)
	v.Trim(1)
	if len(v.Steps) != 1 || v.Steps[0].ID != 3 || v.EarlierSteps != 2 {
		t.Errorf("Trim: %+v", v)
	}
}
