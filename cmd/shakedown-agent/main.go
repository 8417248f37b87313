// Command shakedown-agent is the guest agent of shakedown machines: PID 1 of
// initramfs images, or a service in full systems (which it also boots, as
// PID 1 of their tiny initramfs, when shakedown.root= names the root disk).
// See package agent.
package main

import (
	"context"
	"log"
	"os"
	"time"

	"github.com/shakedown-dev/shakedown/agent"
	"github.com/shakedown-dev/shakedown/internal/agentproto"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("shakedown-agent: ")
	start := time.Now()
	switch {
	case os.Getpid() == 1 && agent.RootDevice() != "":
		// The tiny initramfs of a full system: mount its root disk and
		// become its init; on failure the kernel panics with the reason.
		log.Fatal(agent.SwitchRoot(agent.RootDevice()))
	case os.Getpid() == 1:
		if err := agent.InitSystem(); err != nil {
			log.Printf("init: %v", err)
		}
	default:
		// A service of a full system (shakedown-agent.service).
		if err := agent.InitService(); err != nil {
			log.Printf("init: %v", err)
		}
	}
	// A bad services file still leaves an agent to look at it with.
	svcs, err := agent.LoadServices(agentproto.ServicesFile)
	if err != nil {
		log.Printf("%v", err)
	}
	a, err := agent.New(agent.Config{Services: svcs})
	if err != nil && svcs != nil {
		log.Printf("services: %v", err)
		a, err = agent.New(agent.Config{})
	}
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("up in %v", time.Since(start).Round(time.Millisecond))
	a.StartServices()
	// As PID 1 a return would panic the kernel ("Attempted to kill init"),
	// which the host reports with the console text: the intended outcome
	// when the agent cannot serve.
	log.Fatal(a.Serve(context.Background()))
}
