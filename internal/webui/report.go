package webui

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/shakedown-dev/shakedown/internal/record"
)

// ReportName is the report's file name in the run directory.
const ReportName = "report.html"

// Report limits: the report stays one file a browser opens quickly.
const (
	// consoleMax is how much of each console log the report holds: its
	// end, where failures are.
	consoleMax = 1 << 20
	// excerptBefore and excerptAfter frame the failing machine's console
	// around the failure.
	excerptBefore = 30 * time.Second
	excerptAfter  = 5 * time.Second
	// excerptMax lines at most, the last ones.
	excerptMax = 60
)

// reportData is what a report inlines for the page's script.
type reportData struct {
	View     record.View     `json:"view"`
	Failing  *record.Failure `json:"failing,omitempty"`
	Excerpt  []record.Line   `json:"excerpt,omitempty"`
	Topology string          `json:"topology"`
	// Consoles are each machine's console log (its last consoleMax
	// bytes); Screenshots each screenshot as a data: URL, by file name.
	Consoles    map[string]string `json:"consoles"`
	Screenshots map[string]string `json:"screenshots"`
}

// WriteReport writes the report of the testbed that v describes into its
// run directory and returns its path: the page of the testbed as it ended,
// its failure with the failing machine's console around that moment, every
// machine's console and screenshots, in one file with nothing to fetch.
// rec gives the console lines' times for the excerpt.
func WriteReport(v record.View, rec *record.Record) (string, error) {
	src := Source{Dir: v.Dir, View: func() record.View { return v }}
	v = src.view()
	d := reportData{View: v, Topology: Topology(&v), Consoles: map[string]string{}, Screenshots: map[string]string{}}
	if f, ok := v.Failing(); ok {
		d.Failing = &f
		if f.Machine != "" && rec != nil {
			d.Excerpt = rec.Around(f.Machine, f.Time, excerptBefore, excerptAfter)
			if len(d.Excerpt) > excerptMax {
				d.Excerpt = d.Excerpt[len(d.Excerpt)-excerptMax:]
			}
		}
	}
	for _, m := range v.Machines {
		if text, err := tail(filepath.Join(v.Dir, m.Name+".console.log"), consoleMax); err == nil {
			d.Consoles[m.Name] = text
		}
		for _, s := range m.Screenshots {
			if png, err := os.ReadFile(filepath.Join(v.Dir, s)); err == nil {
				d.Screenshots[s] = "data:image/png;base64," + base64.StdEncoding.EncodeToString(png)
			}
		}
	}
	data, err := json.Marshal(d) // escapes <, > and &: safe inside <script>
	if err != nil {
		return "", fmt.Errorf("report: %w", err)
	}
	var buf bytes.Buffer
	err = renderPage(&buf, pageData{Title: fmt.Sprintf("%s: %s · shakedown report", v.Testbed, v.Result), Mode: "report",
		Bed: filepath.Base(v.Dir), Inline: true, CSS: template.CSS(asset("style.css")), JS: template.JS(asset("app.js")), Data: template.JS(data)})
	if err != nil {
		return "", fmt.Errorf("report: %w", err)
	}
	p := filepath.Join(v.Dir, ReportName)
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		return "", fmt.Errorf("report: %w", err)
	}
	return p, nil
}

// tail returns the last max bytes of a file, with a note when it cut.
func tail(path string, max int64) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	prefix := ""
	if st.Size() > max {
		if _, err := f.Seek(-max, io.SeekEnd); err != nil {
			return "", err
		}
		prefix = fmt.Sprintf("[the first %d bytes are in %s]\n", st.Size()-max, filepath.Base(path))
	}
	b, err := io.ReadAll(f)
	return prefix + string(b), err
}
