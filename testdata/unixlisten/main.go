// Command unixlisten listens on a Unix stream socket and accepts forever;
// tests put it in a guest image, where busybox has no such tool.
package main

import (
	"log"
	"net"
	"os"
)

func main() {
	ln, err := net.Listen("unix", os.Args[1])
	if err != nil {
		log.Fatal(err)
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Fatal(err)
		}
		c.Close()
	}
}
