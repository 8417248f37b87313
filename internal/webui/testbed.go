// Package webui is shakedown's web page and HTML report. A testbed serves
// its record (package record) over HTTP on its control socket (Handler);
// `shakedown web` finds the running testbeds and serves the page on
// loopback (Server), proxying each testbed's API; when a testbed ends, the
// same page, its data inlined, becomes its report.html (WriteReport).
// Everything the page needs is embedded in the binary: no CDN, no outside
// fonts or scripts.
//
// It imports internal/record and control, never the root package: the
// root package gives Handler what it knows through Source.
package webui

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/shakedown-dev/shakedown/internal/record"
)

// Source is what a testbed's Handler serves.
type Source struct {
	Record *record.Record
	// Dir is the run directory: console logs, captures and screenshots.
	Dir string
	// View describes the testbed now.
	View func() record.View
	// Screenshot saves a screenshot of a running machine, named by name,
	// and returns its path.
	Screenshot func(machine string) (string, error)
}

// Timing of the event stream.
const (
	// viewEvery is the most often a stream sends the view: consoles
	// change it at every line during a boot.
	viewEvery = 250 * time.Millisecond
	// keepAlive is how often an idle stream says it is alive, so that
	// proxies and browsers keep it open.
	keepAlive = 15 * time.Second
	// liveSteps is how many of the last steps a live view carries: a
	// test that runs thousands of commands would otherwise send them all
	// at every change.
	liveSteps = 500
	// followEvery is how often a followed capture is checked for growth
	// (the switch flushes its capture every 100 ms).
	followEvery = 200 * time.Millisecond
)

// Handler serves a testbed's API:
//
//	GET  /api/view              the View, as JSON
//	GET  /api/events            the View as server-sent events ("view"),
//	                            console lines of ?console=MACHINE after
//	                            ?seq=N ("console"), and "end" when the
//	                            testbed ends, after which the stream ends
//	GET  /api/topology.svg      the topology drawn
//	GET  /api/console/MACHINE   the machine's whole console log
//	GET  /api/pcap/NETWORK      the network's capture so far; ?follow=1
//	                            goes on sending what it captures
//	POST /api/screenshot/MACHINE  a screenshot now, as PNG
//	GET  /api/file/NAME.png     a screenshot taken earlier
func Handler(src Source) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/view", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, src.view())
	})
	mux.HandleFunc("GET /api/events", src.events)
	mux.HandleFunc("GET /api/topology.svg", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/svg+xml")
		v := src.view()
		io.WriteString(w, Topology(&v))
	})
	mux.HandleFunc("GET /api/console/{machine}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("machine")
		if v := src.view(); !slices.ContainsFunc(v.Machines, func(m record.Machine) bool { return m.Name == name }) {
			http.Error(w, fmt.Sprintf("no machine %q in this testbed", name), http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		http.ServeFile(w, r, filepath.Join(src.Dir, name+".console.log"))
	})
	mux.HandleFunc("GET /api/pcap/{network}", src.pcap)
	mux.HandleFunc("POST /api/screenshot/{machine}", func(w http.ResponseWriter, r *http.Request) {
		p, err := src.Screenshot(r.PathValue("machine"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		w.Header().Set("Content-Type", "image/png")
		w.Header().Set("X-Screenshot", filepath.Base(p))
		http.ServeFile(w, r, p)
	})
	mux.HandleFunc("GET /api/file/{name}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		if !screenshotFile.MatchString(name) {
			http.Error(w, "only screenshots (MACHINE-NAME.png) are served", http.StatusNotFound)
			return
		}
		http.ServeFile(w, r, filepath.Join(src.Dir, name))
	})
	return mux
}

// screenshotFile matches the names of screenshots in a run directory.
var screenshotFile = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*-[A-Za-z0-9_.-]+\.png$`)

// ScreenshotName names a screenshot taken from the page, by the time.
func ScreenshotName() string { return "web-" + time.Now().Format("150405.000") }

// view is the View with each machine's screenshots found in the run
// directory.
func (src Source) view() record.View {
	v := src.View()
	shots, _ := filepath.Glob(filepath.Join(src.Dir, "*.png"))
	for i := range v.Machines {
		m := &v.Machines[i]
		for _, s := range shots {
			if b := filepath.Base(s); screenshotFile.MatchString(b) && len(b) > len(m.Name) && b[:len(m.Name)+1] == m.Name+"-" {
				m.Screenshots = append(m.Screenshots, b)
			}
		}
	}
	return v
}

// liveView is the view an event stream sends: its last liveSteps steps.
func (src Source) liveView() record.View {
	v := src.view()
	v.Trim(liveSteps)
	return v
}

// events streams the view and, if asked for, a machine's console, until
// the testbed ends or the client goes.
func (src Source) events(w http.ResponseWriter, r *http.Request) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	machine := r.URL.Query().Get("console")
	seq, _ := strconv.ParseInt(r.URL.Query().Get("seq"), 10, 64)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	send := func(event string, data any) bool {
		b, _ := json.Marshal(data)
		_, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, b)
		flusher.Flush()
		return err == nil
	}
	rec := src.Record
	alive := time.NewTicker(keepAlive)
	defer alive.Stop()
	var last []byte
	for {
		changed := rec.Changed()
		if machine != "" {
			if lines := rec.Lines(machine, seq); len(lines) > 0 {
				seq = lines[len(lines)-1].Seq
				if !send("console", lines) {
					return
				}
			}
		}
		v := src.liveView()
		if b, _ := json.Marshal(v); string(b) != string(last) {
			last = b
			if !send("view", v) {
				return
			}
		}
		select {
		case <-rec.Done():
			send("end", src.liveView())
			return
		case <-r.Context().Done():
			return
		case <-alive.C:
			if _, err := io.WriteString(w, ": alive\n\n"); err != nil {
				return
			}
			flusher.Flush()
		case <-changed:
			// At most one view per viewEvery, whatever the rate of change.
			select {
			case <-time.After(viewEvery):
			case <-rec.Done():
			case <-r.Context().Done():
				return
			}
		}
	}
}

// pcap serves a network's capture so far, and with ?follow=1 what it
// captures next, until the testbed ends or the client goes.
func (src Source) pcap(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("network")
	v := src.view()
	var capture string
	for _, n := range v.Networks {
		if n.Name == name {
			capture = n.Capture
			if capture == "" {
				http.Error(w, fmt.Sprintf("network %s captures nothing (declare it with NetworkOptions.Capture, or capture=True in a scenario)", name), http.StatusNotFound)
				return
			}
		}
	}
	if capture == "" {
		http.Error(w, fmt.Sprintf("no network %q in this testbed", name), http.StatusNotFound)
		return
	}
	f, err := os.Open(filepath.Join(src.Dir, capture))
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/vnd.tcpdump.pcap")
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", capture))
	if r.URL.Query().Get("follow") == "" {
		io.Copy(w, f)
		return
	}
	flusher, _ := w.(http.Flusher)
	t := time.NewTicker(followEvery)
	defer t.Stop()
	for {
		// The stream is the file's bytes in order, so a record that
		// reaches the file in two flushes arrives whole all the same.
		if _, err := io.Copy(w, f); err != nil && !errors.Is(err, io.EOF) {
			return
		}
		if flusher != nil {
			flusher.Flush()
		}
		select {
		case <-src.Record.Done():
			io.Copy(w, f)
			return
		case <-r.Context().Done():
			return
		case <-t.C:
		}
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(v)
}
