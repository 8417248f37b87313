package webui

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shakedown-dev/shakedown/control"
	"github.com/shakedown-dev/shakedown/internal/record"
	"github.com/shakedown-dev/shakedown/internal/rundir"
)

// fakeBed is a testbed's record and run directory, without machines.
type fakeBed struct {
	rec  *record.Record
	dir  string
	view record.View
	shot func(string) (string, error)
}

func newFakeBed(t *testing.T, dir string) *fakeBed {
	if dir == "" {
		dir = t.TempDir()
	}
	b := &fakeBed{rec: record.New("TestFake"), dir: dir}
	b.view = record.View{Dir: dir, PID: os.Getpid(),
		Machines: []record.Machine{{Name: "web", Networks: []string{"lan", "quiet"}}, {Name: "db"}},
		Networks: []record.Network{
			{Name: "lan", Number: 1, Capture: "lan.pcap", Frames: 7, Links: []record.Link{{Peer: "web", State: record.LinkUp, Addr: "192.168.1.2"}, {Peer: "api", Host: true, State: record.LinkUp}}},
			{Name: "quiet", Number: 2, Links: []record.Link{{Peer: "web", State: record.LinkBlocked, Detail: `<b>&"`}}},
		}}
	os.WriteFile(filepath.Join(dir, "web.console.log"), []byte("booting\nweb login:\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "lan.pcap"), []byte("PCAP1"), 0o644)
	os.WriteFile(filepath.Join(dir, "web-first.png"), []byte("\x89PNG fake"), 0o644)
	os.WriteFile(filepath.Join(dir, "secret.txt"), []byte("not served"), 0o644)
	b.shot = func(name string) (string, error) {
		if name != "web" {
			return "", errors.New("machine " + name + " is not running")
		}
		p := filepath.Join(dir, "web-"+ScreenshotName()+".png")
		return p, os.WriteFile(p, []byte("\x89PNG now"), 0o644)
	}
	return b
}

func (b *fakeBed) source() Source {
	return Source{Record: b.rec, Dir: b.dir, Screenshot: b.shot, View: func() record.View {
		v := b.view
		b.rec.Fill(&v)
		return v
	}}
}

func get(t *testing.T, h http.Handler, method, target string) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(method, target, nil))
	return w
}

func TestHandler(t *testing.T) {
	b := newFakeBed(t, "")
	h := Handler(b.source())
	for _, tc := range []struct {
		method, target string
		code           int
		ctype, body    string
	}{
		{"GET", "/api/view", 200, "application/json", `"web-first.png"`},
		{"GET", "/api/topology.svg", 200, "image/svg+xml", "&lt;b&gt;&amp;&#34;"},
		{"GET", "/api/console/web", 200, "text/plain", "web login:"},
		{"GET", "/api/console/nobody", 404, "", `no machine "nobody"`},
		{"GET", "/api/pcap/lan", 200, "application/vnd.tcpdump.pcap", "PCAP1"},
		{"GET", "/api/pcap/quiet", 404, "", "captures nothing (declare it with NetworkOptions.Capture"},
		{"GET", "/api/pcap/wan", 404, "", `no network "wan"`},
		{"GET", "/api/file/web-first.png", 200, "image/png", "PNG fake"},
		{"GET", "/api/file/secret.txt", 404, "", "only screenshots"},
		{"GET", "/api/file/..%2fsecret.txt", 404, "", ""},
		{"POST", "/api/screenshot/web", 200, "image/png", "PNG now"},
		{"POST", "/api/screenshot/db", 409, "", "machine db is not running"},
		{"GET", "/api/screenshot/web", 405, "", ""},
	} {
		t.Run(tc.method+" "+tc.target, func(t *testing.T) {
			w := get(t, h, tc.method, tc.target)
			if w.Code != tc.code {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.code, w.Body)
			}
			if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, tc.ctype) {
				t.Errorf("Content-Type %q, want %q", ct, tc.ctype)
			}
			if !strings.Contains(w.Body.String(), tc.body) {
				t.Errorf("body lacks %q:\n%s", tc.body, w.Body)
			}
		})
	}
}

// sse reads server-sent events.
type sse struct{ r *bufio.Reader }

func (s sse) next(t *testing.T) (event, data string) {
	t.Helper()
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			t.Fatalf("stream ended (%v), waiting for an event", err)
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case strings.HasPrefix(line, "event: "):
			event = line[len("event: "):]
		case strings.HasPrefix(line, "data: "):
			data = line[len("data: "):]
		case line == "" && event != "":
			return event, data
		}
	}
}

func TestEvents(t *testing.T) {
	b := newFakeBed(t, "")
	b.rec.Console("web", "early line")
	srv := httptest.NewServer(Handler(b.source()))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/api/events?console=web&seq=0")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	s := sse{bufio.NewReader(resp.Body)}
	wantLine := func(text string) {
		t.Helper()
		for {
			ev, data := s.next(t)
			if ev != "console" {
				continue
			}
			var lines []record.Line
			json.Unmarshal([]byte(data), &lines)
			if len(lines) > 0 && lines[len(lines)-1].Text == text {
				return
			}
			t.Fatalf("console event %s, want a last line %q", data, text)
		}
	}
	wantLine("early line")
	b.rec.Console("web", "late line")
	wantLine("late line")
	b.rec.Console("db", "another machine's line") // not asked for
	end := b.rec.Begin("web", "true", false)
	end(nil, "")
	b.rec.End(false)
	for {
		ev, data := s.next(t)
		if ev == "console" {
			t.Fatalf("a console line not asked for: %s", data)
		}
		if ev == "end" {
			var v record.View
			json.Unmarshal([]byte(data), &v)
			if v.Result != record.Passed || len(v.Steps) != 1 {
				t.Errorf("end's view: result %s, %d steps", v.Result, len(v.Steps))
			}
			break
		}
	}
	if _, err := s.r.ReadString('\n'); err != io.EOF {
		t.Errorf("stream goes on after end: %v", err)
	}
}

func TestPcapFollow(t *testing.T) {
	b := newFakeBed(t, "")
	srv := httptest.NewServer(Handler(b.source()))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/api/pcap/lan?follow=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 5)
	if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "PCAP1" {
		t.Fatalf("first bytes %q, %v", buf, err)
	}
	f, _ := os.OpenFile(filepath.Join(b.dir, "lan.pcap"), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("FRAME")
	f.Close()
	if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "FRAME" {
		t.Fatalf("followed bytes %q, %v", buf, err)
	}
	b.rec.End(false)
	if rest, err := io.ReadAll(resp.Body); err != nil || len(rest) != 0 {
		t.Errorf("after the end: %q, %v", rest, err)
	}
}

func TestListen(t *testing.T) {
	for _, tc := range []struct {
		addr string
		ok   bool
	}{
		{"", true},
		{"127.0.0.1:0", true},
		{"localhost:0", true},
		{"[::1]:0", true},
		{"0.0.0.0:0", false},
		{":0", false},
		{"192.0.2.1:80", false},
		{"127.0.0.1", false},
	} {
		ln, err := Listen(tc.addr)
		if ln != nil {
			ln.Close()
		}
		if tc.ok && err != nil && !strings.Contains(err.Error(), "cannot assign") {
			t.Errorf("Listen(%q): %v", tc.addr, err)
		}
		if !tc.ok && err == nil {
			t.Errorf("Listen(%q) accepted", tc.addr)
		}
	}
}

func TestServerToken(t *testing.T) {
	s, err := New(Config{Parent: t.TempDir(), Token: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	req := func(target, host, cookie string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", target, nil)
		r.Host = host
		if cookie != "" {
			r.AddCookie(&http.Cookie{Name: cookieName, Value: cookie})
		}
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		return w
	}
	for _, tc := range []struct {
		name, target, host, cookie string
		code                       int
		body                       string
	}{
		{"no token", "/", "127.0.0.1:7778", "", 403, "open the address shakedown web printed"},
		{"wrong token", "/?token=guess", "127.0.0.1:7778", "", 403, "wrong token"},
		{"wrong cookie", "/api/testbeds", "127.0.0.1:7778", "guess", 403, "no token"},
		{"token sets the cookie", "/t/x/?token=s3cret", "127.0.0.1:7778", "", 303, ""},
		{"cookie", "/", "localhost:7778", "s3cret", 200, `data-mode="index"`},
		{"rebinding", "/", "evil.example:7778", "s3cret", 403, "not a loopback address"},
		{"static", "/static/app.js", "[::1]:7778", "s3cret", 200, "renderTestbed"},
		{"not static", "/static/page.html", "127.0.0.1:7778", "s3cret", 404, ""},
		{"list", "/api/testbeds", "127.0.0.1:7778", "s3cret", 200, "[]"},
		{"machine page", "/t/bed/m/web", "127.0.0.1:7778", "s3cret", 200, `data-machine="web"`},
		{"gone", "/t/bed/api/view", "127.0.0.1:7778", "s3cret", 404, "testbed bed no longer exists"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := req(tc.target, tc.host, tc.cookie)
			if w.Code != tc.code {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.code, w.Body)
			}
			if !strings.Contains(w.Body.String(), tc.body) {
				t.Errorf("body lacks %q:\n%s", tc.body, w.Body)
			}
			if tc.code == 303 {
				c := w.Result().Cookies()
				if len(c) != 1 || c[0].Value != "s3cret" || !c[0].HttpOnly || c[0].SameSite != http.SameSiteStrictMode {
					t.Errorf("cookie %+v", c)
				}
				if loc := w.Header().Get("Location"); loc != "/t/x/" {
					t.Errorf("redirect to %q, want the address without its token", loc)
				}
			}
		})
	}
}

// TestProxy serves a fake testbed on a real control socket in a real run
// directory and reaches its API through the server, as `shakedown web`
// does; when the testbed ends, its page's API says it is gone.
func TestProxy(t *testing.T) {
	parent := t.TempDir()
	run, err := rundir.Make(parent, "TestFake")
	if err != nil {
		t.Fatal(err)
	}
	b := newFakeBed(t, run.Path)
	ctl, err := control.Serve(control.Config{Dir: run.Path, Name: "TestFake",
		Machines: func() []control.Machine { return []control.Machine{{Name: "web", Running: true}} },
		HTTP:     Handler(b.source())})
	if err != nil {
		t.Fatal(err)
	}
	s, _ := New(Config{Parent: parent, Token: "t"})
	hs := httptest.NewServer(s)
	defer hs.Close()
	client := &http.Client{Timeout: 10 * time.Second}
	fetch := func(path string) (int, string) {
		req, _ := http.NewRequest("GET", hs.URL+path, nil)
		req.AddCookie(&http.Cookie{Name: cookieName, Value: "t"})
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	bed := filepath.Base(run.Path)
	if code, body := fetch("/api/testbeds"); code != 200 || !strings.Contains(body, `"name":"`+bed+`"`) || !strings.Contains(body, `"test":"TestFake"`) {
		t.Fatalf("testbeds: %d %s", code, body)
	}
	if code, body := fetch("/t/" + bed + "/api/view"); code != 200 || !strings.Contains(body, `"testbed":"TestFake"`) {
		t.Fatalf("view through the control socket: %d %s", code, body)
	}
	if code, body := fetch("/t/" + bed + "/api/console/web"); code != 200 || body != "booting\nweb login:\n" {
		t.Fatalf("console through the control socket: %d %q", code, body)
	}
	other, _ := New(Config{Parent: parent, Token: "t", PID: os.Getpid() + 1})
	w := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "/api/testbeds", nil)
	r.Host = "127.0.0.1"
	r.AddCookie(&http.Cookie{Name: cookieName, Value: "t"})
	other.ServeHTTP(w, r)
	if w.Body.String() != "[]\n" {
		t.Errorf("a server for another process lists %s", w.Body)
	}

	b.rec.End(false)
	ctl.Close()
	run.Release(false)
	if code, body := fetch("/t/" + bed + "/api/view"); code != 404 || !strings.Contains(body, `"gone":true`) {
		t.Errorf("ended testbed: %d %s", code, body)
	}
}

func TestReport(t *testing.T) {
	b := newFakeBed(t, "")
	sub := b.rec.Begin("", "subtest: serve", true)
	b.rec.Begin("web", "curl", false)(nil, "exit status 7")
	b.rec.Console("web", "</script><script>alert(1)</script>")
	b.rec.Fail("web", `command "curl" failed with status 7`)
	sub(errors.New("failed"), "")
	b.rec.End(true)
	p, err := WriteReport(b.source().View(), b.rec)
	if err != nil {
		t.Fatal(err)
	}
	if p != filepath.Join(b.dir, ReportName) {
		t.Errorf("report at %s", p)
	}
	data, _ := os.ReadFile(p)
	html := string(data)
	for _, want := range []string{`data-mode="report"`, `"failing":{`, `"action":2`, "web login:", "data:image/png;base64,", `\u003c/script\u003e`, "<style>", "function renderTestbed"} {
		if !strings.Contains(html, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if strings.Contains(html, "<script>alert") || strings.Contains(html, `src="/static`) || strings.Contains(html, `="http`) || strings.Contains(html, "url(") {
		t.Error("report has a raw console line, or fetches something")
	}
}

func TestTail(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.log")
	os.WriteFile(p, []byte("0123456789"), 0o644)
	for _, tc := range []struct {
		max  int64
		want string
	}{{100, "0123456789"}, {10, "0123456789"}, {4, "[the first 6 bytes are in c.log]\n6789"}} {
		if got, err := tail(p, tc.max); err != nil || got != tc.want {
			t.Errorf("tail(%d) = %q, %v; want %q", tc.max, got, err, tc.want)
		}
	}
}

// TestScriptParses checks the page's script with node, where there is
// one; the browser test runs it for real.
func TestScriptParses(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not found; TestGuestBrowser runs the script in chromium")
	}
	if out, err := exec.Command(node, "--check", filepath.Join("assets", "app.js")).CombinedOutput(); err != nil {
		t.Fatalf("app.js: %v\n%s", err, out)
	}
}

// TestEventsTrimSteps: a live view carries the last liveSteps steps and
// counts the rest.
func TestEventsTrimSteps(t *testing.T) {
	b := newFakeBed(t, "")
	for range liveSteps + 100 {
		b.rec.Event("web", "a command")
	}
	srv := httptest.NewServer(Handler(b.source()))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/api/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	ev, data := sse{bufio.NewReader(resp.Body)}.next(t)
	var v record.View
	json.Unmarshal([]byte(data), &v)
	if ev != "view" || len(v.Steps) != liveSteps || v.EarlierSteps != 100 || v.Steps[0].ID != 101 {
		t.Errorf("%s: %d steps from %d, %d earlier", ev, len(v.Steps), v.Steps[0].ID, v.EarlierSteps)
	}
}
