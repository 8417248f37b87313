package webstub_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	webstub "github.com/shakedown-dev/shakedown/stub/web"
)

// TestFaults plays each kind of fault and checks what the client sees and
// what the log records.
func TestFaults(t *testing.T) {
	for _, tc := range []struct {
		name     string
		prefix   string
		fault    webstub.Fault
		path     string
		wantCode int    // 0: the request fails
		wantErr  string // in the client's error, when wantCode is 0
		wantHdr  string // Retry-After
		wantLog  string // the log line's end
	}{
		{"status", "/", webstub.Fault{Status: 503}, "/x", 503, "", "", ": 503 Service Unavailable, 20 bytes"},
		{"retry after", "/dists/", webstub.Fault{Status: 429, RetryAfter: 1500 * time.Millisecond}, "/dists/stable/Release", 429, "", "2", "(fault: 429 retry-after 1.5s)"},
		{"other prefix", "/pool/", webstub.Fault{Status: 503}, "/dists/stable/Release", 200, "", "", ": 200 OK, 13 bytes"},
		{"drop", "/", webstub.Fault{Drop: true}, "/x", 0, "EOF", "", ": no answer"},
		{"delay", "/", webstub.Fault{Delay: 100 * time.Millisecond}, "/dists/stable/Release", 200, "", "", "(fault: delay 100ms)"},
		{"client gives up", "/", webstub.Fault{Delay: time.Hour}, "/x", 0, "Timeout", "", ": no answer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, url := start(t, webstub.Config{Dir: "testdata/repo"})
			if err := s.SetFault(tc.prefix, tc.fault); err != nil {
				t.Fatal(err)
			}
			c := client(nil)
			if tc.fault.Delay == time.Hour {
				c.Timeout = 200 * time.Millisecond
			}
			began := time.Now()
			resp, err := c.Get(url + tc.path)
			if tc.wantCode == 0 {
				if err == nil {
					resp.Body.Close()
					t.Fatalf("got %d, want an error with %q", resp.StatusCode, tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("got %v, want an error with %q", err, tc.wantErr)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != tc.wantCode || resp.Header.Get("Retry-After") != tc.wantHdr {
					t.Errorf("got %d Retry-After %q, want %d %q", resp.StatusCode, resp.Header.Get("Retry-After"), tc.wantCode, tc.wantHdr)
				}
			}
			if took := time.Since(began); took < tc.fault.Delay && tc.fault.Delay < time.Hour {
				t.Errorf("answered in %v, before the Delay of %v", took, tc.fault.Delay)
			}
			r, err := s.WaitForRequest(t.Context(), webstub.Match{Path: tc.path})
			if err != nil {
				t.Fatal(err)
			}
			if line := r.String(); !strings.Contains(line, tc.wantLog) {
				t.Errorf("log line: got %q, want it to hold %q", line, tc.wantLog)
			}
		})
	}
}

// TestFaultTimes clears a fault after Times requests, and picks the
// longest prefix.
func TestFaultTimes(t *testing.T) {
	s, url := start(t, webstub.Config{Handler: hello})
	if err := s.SetFault("/", webstub.Fault{Status: 500}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetFault("/a/", webstub.Fault{Status: 503, Times: 2}); err != nil {
		t.Fatal(err)
	}
	c := client(nil)
	var got []int
	for _, p := range []string{"/a/1", "/b", "/a/2", "/a/3"} {
		code, _ := get(t, c, url+p)
		got = append(got, code)
	}
	if want := []int{503, 500, 503, 500}; !equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	s.ClearFault("/")
	if code, _ := get(t, c, url+"/a/4"); code != http.StatusOK {
		t.Errorf("after ClearFault: got %d, want 200", code)
	}
	s.SetFault("/", webstub.Fault{Status: 500})
	s.ClearFaults()
	if code, _ := get(t, c, url+"/b"); code != http.StatusOK {
		t.Errorf("after ClearFaults: got %d, want 200", code)
	}
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestBadFaults refuses faults that do nothing or contradict themselves.
func TestBadFaults(t *testing.T) {
	s := webstub.New(webstub.Config{})
	for _, tc := range []struct {
		prefix string
		f      webstub.Fault
		want   string
	}{
		{"/", webstub.Fault{}, "does nothing"},
		{"/", webstub.Fault{Times: 1}, "does nothing"},
		{"x", webstub.Fault{Status: 503}, "starting with /"},
		{"/", webstub.Fault{Status: 99}, "want 200 to 599"},
		{"/", webstub.Fault{Status: 600}, "want 200 to 599"},
		{"/", webstub.Fault{Drop: true, Status: 503}, "set one"},
		{"/", webstub.Fault{RetryAfter: time.Second}, "goes with a Status"},
		{"/", webstub.Fault{Delay: -time.Second}, "negative"},
		{"/", webstub.Fault{Drop: true, Times: -1}, "negative"},
	} {
		t.Run(tc.f.String(), func(t *testing.T) {
			err := s.SetFault(tc.prefix, tc.f)
			if !errors.Is(err, webstub.ErrBadFault) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want ErrBadFault saying %q", err, tc.want)
			}
		})
	}
}
