package scenario

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"
)

// The JUnit XML shape that CI systems (Jenkins, GitLab, GitHub reporters)
// read: testsuites > testsuite > testcase > failure.
type (
	junitSuites struct {
		XMLName  xml.Name     `xml:"testsuites"`
		Tests    int          `xml:"tests,attr"`
		Failures int          `xml:"failures,attr"`
		Time     string       `xml:"time,attr"`
		Suites   []junitSuite `xml:"testsuite"`
	}
	junitSuite struct {
		Name      string      `xml:"name,attr"`
		Tests     int         `xml:"tests,attr"`
		Failures  int         `xml:"failures,attr"`
		Errors    int         `xml:"errors,attr"`
		Skipped   int         `xml:"skipped,attr"`
		Time      string      `xml:"time,attr"`
		Timestamp string      `xml:"timestamp,attr,omitempty"`
		Cases     []junitCase `xml:"testcase"`
		SystemOut string      `xml:"system-out,omitempty"`
	}
	junitCase struct {
		Name      string        `xml:"name,attr"`
		Classname string        `xml:"classname,attr"`
		Time      string        `xml:"time,attr"`
		Failure   *junitFailure `xml:"failure,omitempty"`
	}
	junitFailure struct {
		Message string `xml:"message,attr"`
		Type    string `xml:"type,attr"`
		Text    string `xml:",cdata"`
	}
)

// WriteJUnit writes results as JUnit XML: a testsuite per scenario, named
// by its path, with a testcase for its top level and one per subtest. A
// failure's message attribute is the error's first line with the scenario
// position; its text, as CDATA so that it reads well raw, adds the callers,
// the command output and the machine's last console lines. Characters XML
// cannot hold (console escape sequences) are replaced by U+FFFD.
func WriteJUnit(w io.Writer, results []*Result) error {
	all := junitSuites{}
	var total time.Duration
	for _, r := range results {
		s := junitSuite{
			Name: r.Path,
			Time: seconds(r.Duration),
		}
		if !r.Started.IsZero() {
			s.Timestamp = r.Started.UTC().Format(time.RFC3339)
		}
		if r.OutputDir != "" {
			s.SystemOut = "artifacts kept in " + r.OutputDir
		}
		for _, c := range r.Cases {
			jc := junitCase{Name: c.Name, Classname: r.Path, Time: seconds(c.Duration)}
			if c.Err != nil {
				e := asError(c.Err)
				jc.Failure = &junitFailure{Message: xmlSafe(e.Summary()), Type: "failure", Text: xmlSafe(e.Error())}
				s.Failures++
			}
			s.Cases = append(s.Cases, jc)
		}
		s.Tests = len(s.Cases)
		all.Tests += s.Tests
		all.Failures += s.Failures
		total += r.Duration
		all.Suites = append(all.Suites, s)
	}
	all.Time = seconds(total)
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return fmt.Errorf("junit: %w", err)
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(all); err != nil {
		return fmt.Errorf("junit: %w", err)
	}
	if _, err := io.WriteString(w, "\n"); err != nil {
		return fmt.Errorf("junit: %w", err)
	}
	return nil
}

// xmlSafe replaces what XML 1.0 cannot hold, even in CDATA: control
// characters but tab and newlines, and invalid UTF-8.
func xmlSafe(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\t' || r == '\n' || r == '\r':
			return r
		case r < 0x20, r == utf8.RuneError, r >= 0xFFFE && r <= 0xFFFF, r >= 0xD800 && r <= 0xDFFF:
			return '\uFFFD'
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.3f", d.Seconds()) }
