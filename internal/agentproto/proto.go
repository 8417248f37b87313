// Package agentproto holds what the guest agent and its host-side client
// must agree on: the virtio-serial port name, the handshake that precedes
// SSH on that port, and the names of shakedown's SSH extensions. It imports
// nothing of shakedown's.
package agentproto

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
)

// PortName is the name of the virtio-serial port the agent serves SSH on;
// the guest finds it in /sys/class/virtio-ports/*/name.
const PortName = "org.shakedown.agent.0"

// Kernel command line parameters the host sets and the agent reads.
const (
	ParamHostname = "shakedown.hostname"
	ParamPort     = "shakedown.port"
)

// The handshake. A virtio-serial port keeps no notion of sessions: bytes of
// a session that ended (the host disconnected mid-stream, or the guest wrote
// while nobody listened) can still sit in either direction's buffers. So
// before SSH starts, the host sends Hello+nonce lines (repeated until
// answered, because a Hello can be swallowed by an agent that has not yet
// noticed the old session ended), the agent answers each with Ready+nonce,
// and the host then sends Start+nonce and starts SSH. Each side discards
// whatever precedes the line it waits for, so stale bytes never reach SSH.
// Extra Ready lines that reach the host's SSH client are ignored by it:
// RFC 4253 lets lines precede the version string.
const (
	Hello = "SHAKEDOWN-HELLO "
	Ready = "SHAKEDOWN-READY "
	Start = "SHAKEDOWN-START "
)

// SSH extensions, named user@domain as RFC 4250 asks for private names.
const (
	// ReqChdir on a session channel sets the working directory of the
	// command that follows (payload: one SSH string).
	ReqChdir = "chdir@shakedown.dev"
	// ReqPoweroff and ReqReboot are global requests: the agent replies,
	// then syncs, stops every process and powers off or reboots.
	ReqPoweroff = "poweroff@shakedown.dev"
	ReqReboot   = "reboot@shakedown.dev"
	// ChanExec opens a channel that runs a command at once: the command,
	// environment and directory travel in the open request (an ExecRequest
	// in JSON), so the guest starts the process while its confirmation is
	// on the way back, instead of after a further round trip. Output, exit
	// status and signals work as on a "session" channel.
	ChanExec = "exec@shakedown.dev"
	// ChanStreamLocal is OpenSSH's channel type for a Unix socket in the
	// guest (payload: socket path, reserved string, reserved uint32).
	ChanStreamLocal = "direct-streamlocal@openssh.com"
)

// ExecRequest is the payload of a ChanExec open request.
type ExecRequest struct {
	// Cmd is run by /bin/sh -c.
	Cmd string `json:"cmd"`
	// Env holds NAME=value pairs added to the agent's environment.
	Env []string `json:"env,omitempty"`
	// Dir is the working directory; "" means /.
	Dir string `json:"dir,omitempty"`
	// NoStdin gives the command /dev/null as stdin, sparing a pipe.
	NoStdin bool `json:"no_stdin,omitempty"`
}

// MaxLine bounds a handshake line; anything longer is junk to skip.
const MaxLine = 128

// ScanFor reads r until a line equal to prefix+nonce for some nonce and
// returns that nonce; every other byte is discarded. want, if not empty,
// restricts the nonce. onOther, if set, is called for lines that carry a
// different known prefix (the agent uses it to answer repeated Hellos).
func ScanFor(r *bufio.Reader, prefix, want string, onOther func(line string) error) (string, error) {
	for {
		line, err := readLine(r)
		if err != nil {
			return "", err
		}
		if rest, ok := bytes.CutPrefix(line, []byte(prefix)); ok && len(rest) > 0 {
			if want == "" || string(rest) == want {
				return string(rest), nil
			}
		}
		if onOther != nil {
			if err := onOther(string(line)); err != nil {
				return "", err
			}
		}
	}
}

// readLine returns the next line without its newline, or the trailing
// MaxLine bytes of an overlong one.
func readLine(r *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		b, err := r.ReadByte()
		if err != nil {
			if err == io.EOF && len(line) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if b == '\n' {
			return bytes.TrimSuffix(line, []byte("\r")), nil
		}
		if len(line) == MaxLine {
			line = line[:0]
		}
		line = append(line, b)
	}
}

// Line formats one handshake line.
func Line(prefix, nonce string) []byte { return []byte(fmt.Sprintf("%s%s\n", prefix, nonce)) }
