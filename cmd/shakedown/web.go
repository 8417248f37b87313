package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/shakedown-dev/shakedown/internal/webui"
)

const webUsage = `usage: shakedown web [--addr HOST:PORT] [--out DIR]

Serves a live page of every testbed running on this host, whether go test
or shakedown run started it: machines and their states, the topology and
each link's state, the steps as they run, each console streaming, frame
counters and captures, screenshots on demand. It listens on loopback only,
and the address it prints carries a token that every request needs (other
users of the host can reach a loopback port, not the token). The page is
served from the binary; it fetches nothing from outside.

flags:
`

// webCmd is `shakedown web`.
func webCmd(args []string) error {
	fs := flag.NewFlagSet("web", flag.ExitOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), webUsage); fs.PrintDefaults() }
	addr := fs.String("addr", "127.0.0.1:7778", "listen on `HOST:PORT`, a loopback address (port 0: any free one)")
	out := fs.String("out", "", "the parent of run directories (default $SHAKEDOWN_OUTPUT, else $TMPDIR/shakedown)")
	fs.Parse(args)
	if fs.NArg() > 0 {
		fs.Usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return serveWeb(ctx, os.Stdout, *addr, webui.Config{Parent: *out})
}

// serveWeb serves the page until ctx ends, after printing its address.
func serveWeb(ctx context.Context, w io.Writer, addr string, cfg webui.Config) error {
	srv, err := webui.New(cfg)
	if err != nil {
		return err
	}
	ln, err := webui.Listen(addr)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "shakedown web: open %s\n", srv.URL(ln.Addr()))
	return srv.Serve(ctx, ln)
}

// startWeb serves the page of this process's testbeds in the background,
// for shakedown run --web; the returned function stops it.
func startWeb(w io.Writer, addr string, parent string) (stop func(), err error) {
	srv, err := webui.New(webui.Config{Parent: parent, PID: os.Getpid()})
	if err != nil {
		return nil, err
	}
	ln, err := webui.Listen(addr)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(w, "shakedown web: open %s\n", srv.URL(ln.Addr()))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Serve(ctx, ln); close(done) }()
	return func() { cancel(); <-done }, nil
}
