package scenario

import (
	"encoding/xml"
	"testing"
)

// The JUnit shape CI systems read, as a consumer parses it: the tests
// check reports through these, not through the writer's own types.
type (
	xSuites struct {
		XMLName  xml.Name `xml:"testsuites"`
		Tests    int      `xml:"tests,attr"`
		Failures int      `xml:"failures,attr"`
		Suites   []xSuite `xml:"testsuite"`
	}
	xSuite struct {
		Name     string  `xml:"name,attr"`
		Tests    int     `xml:"tests,attr"`
		Failures int     `xml:"failures,attr"`
		Time     float64 `xml:"time,attr"`
		Cases    []xCase `xml:"testcase"`
	}
	xCase struct {
		Name      string    `xml:"name,attr"`
		Classname string    `xml:"classname,attr"`
		Time      float64   `xml:"time,attr"`
		Failure   *xFailure `xml:"failure"`
	}
	xFailure struct {
		Message string `xml:"message,attr"`
		Text    string `xml:",chardata"`
	}
)

func parseJUnit(t *testing.T, data []byte) xSuites {
	t.Helper()
	var s xSuites
	if err := xml.Unmarshal(data, &s); err != nil {
		t.Fatalf("JUnit report does not parse: %v\n%s", err, data)
	}
	return s
}
