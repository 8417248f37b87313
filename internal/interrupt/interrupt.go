// Package interrupt runs registered stop functions when the process gets
// SIGINT or SIGTERM, then lets the signal take its usual course. It imports
// only the standard library.
//
// Testbeds register here so that Ctrl-C stops their machines and removes
// their run directories before the process goes: QEMU would die with the
// process anyway (PDEATHSIG), the directories would not.
package interrupt

import (
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

var (
	mu    sync.Mutex
	next  int
	stops = map[int]func(os.Signal){}
	once  sync.Once
)

// Register arranges for stop to run when the process is interrupted, and
// returns the function that undoes that. Stops run one after another, in
// no set order, on the goroutine that received the signal; then the
// process is killed by the same signal.
func Register(stop func(os.Signal)) (unregister func()) {
	once.Do(func() {
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGINT, syscall.SIGTERM)
		go func() { run(<-c) }()
	})
	mu.Lock()
	defer mu.Unlock()
	id := next
	next++
	stops[id] = stop
	return func() {
		mu.Lock()
		defer mu.Unlock()
		delete(stops, id)
	}
}

func run(sig os.Signal) {
	mu.Lock()
	fs := make([]func(os.Signal), 0, len(stops))
	for _, f := range stops {
		fs = append(fs, f)
	}
	mu.Unlock()
	for _, f := range fs {
		f(sig)
	}
	fmt.Fprintf(os.Stderr, "shakedown: %v: stopped %d testbed(s)\n", sig, len(fs))
	signal.Reset(sig)
	syscall.Kill(os.Getpid(), sig.(syscall.Signal))
}
