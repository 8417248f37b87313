// Command shakedown-agent is the guest agent of shakedown machines: PID 1 of
// initramfs images, or a service in full systems. See package agent.
package main

import (
	"context"
	"log"
	"os"
	"time"

	"github.com/shakedown-dev/shakedown/agent"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("shakedown-agent: ")
	start := time.Now()
	if os.Getpid() == 1 {
		if err := agent.InitSystem(); err != nil {
			log.Printf("init: %v", err)
		}
	}
	a, err := agent.New(agent.Config{})
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("up in %v", time.Since(start).Round(time.Millisecond))
	// As PID 1 a return would panic the kernel ("Attempted to kill init"),
	// which the host reports with the console text: the intended outcome
	// when the agent cannot serve.
	log.Fatal(a.Serve(context.Background()))
}
