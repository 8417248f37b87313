package shakedown_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shakedown-dev/shakedown"
	"github.com/shakedown-dev/shakedown/control"
	"github.com/shakedown-dev/shakedown/internal/record"
)

// TestObserved checks, without booting anything, what a testbed shows of
// itself: its view over the control socket (networks, a host's link, a
// partition, its steps), and the report it writes when it fails, which
// the failure's log names.
func TestObserved(t *testing.T) {
	var lines []string
	rt := &shakedown.RunT{RunName: "observed", Log: func(l string) { lines = append(lines, l) }}
	tb, err := shakedown.NewE(rt, shakedown.Options{OutputDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	lan, err := tb.NetworkE("lan", shakedown.NetworkOptions{Capture: true})
	if err != nil {
		t.Fatal(err)
	}
	api, err := lan.HostE("api", shakedown.HostOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tb.MachineE("web", shakedown.MachineConfig{Networks: []string{"lan"}}); err != nil {
		t.Fatal(err)
	}
	end := tb.Step("subtest: cut off")
	if err := tb.PartitionE([]shakedown.Peer{api}); err != nil {
		t.Fatal(err)
	}
	end(errors.New("the api answered"))

	beds, err := control.Running(filepath.Dir(tb.OutputDir()))
	if err != nil || len(beds) != 1 {
		t.Fatalf("running testbeds: %+v, %v", beds, err)
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: control.Transport(beds[0].Socket)}
	resp, err := client.Get("http://testbed/api/view")
	if err != nil {
		t.Fatal(err)
	}
	var v record.View
	err = json.NewDecoder(resp.Body).Decode(&v)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if v.Testbed != "observed" || v.Result != record.Running || len(v.Machines) != 1 || v.Machines[0].State != record.Declared {
		t.Errorf("view: %+v", v)
	}
	if len(v.Networks) != 1 || v.Networks[0].Capture != "lan.pcap" || len(v.Networks[0].Links) != 2 {
		t.Fatalf("networks: %+v", v.Networks)
	}
	for _, l := range v.Networks[0].Links {
		switch l.Peer {
		case "web":
			if l.State != record.LinkDown || l.Addr != "" {
				t.Errorf("a machine not started: %+v (no address given out yet)", l)
			}
		case "api":
			if !l.Host || l.State != record.LinkPartitioned || l.Addr != api.Addr().String() {
				t.Errorf("host link: %+v", l)
			}
		}
	}
	if len(v.Steps) != 2 || v.Steps[0].Err != "the api answered" || v.Steps[1].Title != "network lan: partition" || v.Steps[1].Parent != 1 {
		t.Errorf("steps: %+v", v.Steps)
	}

	rt.Fail()
	rt.Close()
	report := filepath.Join(tb.OutputDir(), "report.html")
	if _, err := os.Stat(report); err != nil {
		t.Fatalf("no report: %v", err)
	}
	if log := strings.Join(lines, "\n"); !strings.Contains(log, "(report: "+report+")") {
		t.Errorf("the log does not name the report:\n%s", log)
	}
	os.RemoveAll(tb.OutputDir())
}
