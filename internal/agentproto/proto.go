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
	"slices"
	"strings"
)

// PortName is the name of the virtio-serial port the agent serves SSH on;
// the guest finds it in /sys/class/virtio-ports/*/name.
const PortName = "org.shakedown.agent.0"

// Kernel command line parameters the host sets and the agent reads: the
// one list of them, so that neither side spells one on its own.
const (
	// ParamHostname is the machine's hostname.
	ParamHostname = "shakedown.hostname"
	// ParamNet lists a machine's NICs, in the order of the guest's
	// interfaces eth0, eth1, ...: shakedown.net=V:N,V:N where V is the
	// network's number and N the machine's, or "-" for a NIC that gets no
	// automatic address (a router or DHCP client configures it itself).
	ParamNet = "shakedown.net"
	// ParamRoot names the block device holding the root file system of a
	// full system (shakedown.root=/dev/vda). The agent, PID 1 of a tiny
	// initramfs that holds only it and the modules for the disk, mounts it
	// and hands over to its /sbin/init: Debian's kernel has virtio_blk and
	// ext4 as modules, so root=/dev/vda alone cannot boot it.
	ParamRoot = "shakedown.root"
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
	// ReqSetClock is a global request that sets the guest's wall clock
	// (payload: the time as Unix nanoseconds, one SSH uint64). A machine
	// restored from a saved state wakes with the clock of the moment it
	// was saved; TLS, leases and timers need the host's.
	ReqSetClock = "set-clock@shakedown.dev"
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

// Services supervised by the agent of an initramfs machine.
const (
	// ServicesFile is where the image holds the machine's services, a
	// JSON array of Service, started by the agent after boot.
	ServicesFile = "/etc/shakedown/services.json"
	// ChanUnit opens a channel that asks about or acts on one service:
	// the open request carries a UnitRequest in JSON; the agent answers
	// with one UnitStatus in JSON on the channel and closes it. An agent
	// that supervises nothing rejects it with ssh.Prohibited.
	ChanUnit = "unit@shakedown.dev"
	// NoServices is the message of the rejection of a ChanUnit channel by
	// an agent that supervises nothing.
	NoServices = "the agent supervises no services"
)

// Service is one service the agent supervises.
type Service struct {
	Name    string            `json:"name"`
	Command string            `json:"command"`
	Env     map[string]string `json:"env,omitempty"`
	// After names services that must be active before this one starts.
	After []string `json:"after,omitempty"`
	// Restart is "no" (or ""), "on-failure" or "always".
	Restart string    `json:"restart,omitempty"`
	Ready   Readiness `json:"ready,omitzero"`
}

// Readiness says when a started service counts as active; the zero value
// means at once.
type Readiness struct {
	// Port is a TCP port on the guest's loopback that must accept.
	Port int `json:"port,omitempty"`
	// File is a path that must exist.
	File string `json:"file,omitempty"`
	// Command is a shell command that must exit 0.
	Command string `json:"command,omitempty"`
	// TimeoutMS bounds activation; 0 means the agent's default.
	TimeoutMS int64 `json:"timeout_ms,omitempty"`
}

// Unit actions of a UnitRequest.
const (
	UnitStatusAction = "status"
	UnitStart        = "start"
	UnitStop         = "stop"
	UnitRestart      = "restart"
	UnitList         = "list"
)

// Unit states, as systemd's ActiveState, so that tests written against
// systemd machines read the same on initramfs machines.
const (
	StateInactive     = "inactive"
	StateActivating   = "activating"
	StateActive       = "active"
	StateDeactivating = "deactivating"
	StateFailed       = "failed"
)

// Unit sub-states, as systemd's SubState for services.
const (
	SubDead        = "dead"
	SubStart       = "start"
	SubRunning     = "running"
	SubAutoRestart = "auto-restart"
	SubStop        = "stop"
	SubFailed      = "failed"
)

// JobStart is a UnitStatus's Job while a start is pending.
const JobStart = "start"

// Codes of a UnitStatus's Error, for the host to branch on: the Error text
// is for people.
const (
	// CodeUnknownUnit: the agent supervises no unit of that name.
	CodeUnknownUnit = "unknown-unit"
	// CodeUnknownAction: the request's action is none of the Unit ones.
	CodeUnknownAction = "unknown-action"
)

// UnitRequest is the payload of a ChanUnit open request.
type UnitRequest struct {
	Action string `json:"action"`
	Name   string `json:"name,omitempty"`
}

// UnitStatus answers a UnitRequest: the unit's state after the action,
// or Error (with its Code) when there is no such unit or the action is
// unknown.
type UnitStatus struct {
	Name string `json:"name"`
	// State is systemd's ActiveState: one of the State constants.
	State string `json:"state"`
	// SubState details it: one of the Sub constants.
	SubState string `json:"sub_state"`
	// Job is JobStart while a start is pending (waiting for dependencies
	// or a restart's backoff), else "".
	Job      string `json:"job,omitempty"`
	Command  string `json:"command"`
	PID      int    `json:"pid,omitempty"`
	Restarts int    `json:"restarts"`
	// Result says why the unit last stopped or failed: "exit status 1",
	// "signal KILL", "dependency db failed", "readiness timeout", ...
	Result string `json:"result,omitempty"`
	// ExitedOK says the unit's last run exited with status 0: an inactive
	// unit that did is a one-shot that finished, not a stopped or dead one.
	ExitedOK bool `json:"exited_ok,omitempty"`
	// SinceMS is when the state was entered, in Unix milliseconds.
	SinceMS int64 `json:"since_ms"`
	// Output holds the unit's last output lines.
	Output []string `json:"output,omitempty"`
	// Units lists every unit's name for the list action.
	Units []string `json:"units,omitempty"`
	Error string   `json:"error,omitempty"`
	// Code classifies Error: CodeUnknownUnit or CodeUnknownAction.
	Code string `json:"code,omitempty"`
}

// ValidateServices checks names, restart policies and dependencies and
// returns the services' names in a start order (every service after the
// ones it names in After). An unknown dependency or a cycle is an error
// that names it.
func ValidateServices(svcs []Service) ([]string, error) {
	byName := map[string]*Service{}
	for i := range svcs {
		s := &svcs[i]
		if s.Name == "" || strings.ContainsAny(s.Name, " \t\n/") {
			return nil, fmt.Errorf("service %q: a name must be non-empty, without spaces or slashes", s.Name)
		}
		if byName[s.Name] != nil {
			return nil, fmt.Errorf("service %s: declared twice", s.Name)
		}
		byName[s.Name] = s
		if strings.TrimSpace(s.Command) == "" {
			return nil, fmt.Errorf("service %s: no command", s.Name)
		}
		switch s.Restart {
		case "", "no", "on-failure", "always":
		default:
			return nil, fmt.Errorf("service %s: restart policy %q, want \"no\", \"on-failure\" or \"always\"", s.Name, s.Restart)
		}
		if s.Ready.Port < 0 || s.Ready.Port > 65535 {
			return nil, fmt.Errorf("service %s: readiness port %d out of range", s.Name, s.Ready.Port)
		}
	}
	for _, s := range svcs {
		for _, d := range s.After {
			if byName[d] == nil {
				return nil, fmt.Errorf("service %s: unknown dependency %q (services: %s)", s.Name, d, strings.Join(names(svcs), ", "))
			}
		}
	}
	// Depth-first topological sort; a grey node met again closes a cycle.
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var order, path []string
	var visit func(name string) error
	visit = func(name string) error {
		switch color[name] {
		case grey:
			i := slices.Index(path, name)
			return fmt.Errorf("service %s: dependency cycle %s -> %s", name, strings.Join(path[i:], " -> "), name)
		case black:
			return nil
		}
		color[name] = grey
		path = append(path, name)
		for _, d := range byName[name].After {
			if err := visit(d); err != nil {
				return err
			}
		}
		path = path[:len(path)-1]
		color[name] = black
		order = append(order, name)
		return nil
	}
	for _, s := range svcs {
		if err := visit(s.Name); err != nil {
			return nil, err
		}
	}
	return order, nil
}

func names(svcs []Service) []string {
	var n []string
	for _, s := range svcs {
		n = append(n, s.Name)
	}
	return n
}
