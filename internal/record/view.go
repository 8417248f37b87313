package record

import (
	"time"
)

// View is everything the live page and the report show of a testbed at one
// moment: the record's part (Record.Fill) and the topology the testbed
// describes. It travels as JSON from a testbed's control socket to
// `shakedown web`.
type View struct {
	Testbed string    `json:"testbed"`
	Dir     string    `json:"dir"`
	PID     int       `json:"pid"`
	Accel   string    `json:"accel,omitempty"`
	Started time.Time `json:"started"`
	Ended   time.Time `json:"ended,omitzero"`
	// Result is Running, Passed or Failed.
	Result   string    `json:"result"`
	Machines []Machine `json:"machines"`
	Networks []Network `json:"networks"`
	Steps    []Step    `json:"steps"`
	Failures []Failure `json:"failures"`
	// EarlierSteps counts the steps left out before Steps (Trim).
	EarlierSteps int `json:"earlierSteps,omitempty"`
}

// Trim keeps only the last n steps, for a live page that redraws them
// several times a second; the report keeps them all.
func (v *View) Trim(n int) {
	if len(v.Steps) > n {
		v.EarlierSteps += len(v.Steps) - n
		v.Steps = v.Steps[len(v.Steps)-n:]
	}
}

// Machine is a machine of the view.
type Machine struct {
	Name   string `json:"name"`
	Number int    `json:"number"`
	// State is one of the machine states, or a build step's name.
	State    string   `json:"state"`
	Networks []string `json:"networks"`
	// ConsoleSeq is the sequence number of its last console line.
	ConsoleSeq int64 `json:"consoleSeq"`
	// Screenshots are the PNG files of its screenshots in the run
	// directory, by base name.
	Screenshots []string `json:"screenshots,omitempty"`
}

// Network is a network of the view, with every link to it.
type Network struct {
	Name   string `json:"name"`
	Number int    `json:"number"`
	// Capture is the base name of its pcap file in the run directory;
	// "" without capture.
	Capture string `json:"capture,omitempty"`
	// Frames, Bytes and Drops count the traffic the switch received.
	Frames uint64 `json:"frames"`
	Bytes  uint64 `json:"bytes"`
	Drops  uint64 `json:"drops"`
	Links  []Link `json:"links"`
	// Groups is the partition, by peer name; none when whole.
	Groups [][]string `json:"groups,omitempty"`
}

// Link states.
const (
	LinkUp          = "up"
	LinkDown        = "down" // the machine is not running
	LinkBlocked     = "blocked"
	LinkImpaired    = "impaired"
	LinkPartitioned = "partitioned"
)

// Link is a machine's or a host's link to a network.
type Link struct {
	Peer string `json:"peer"`
	// Host is set for a named host (a stub), unset for a machine.
	Host bool   `json:"host,omitempty"`
	Addr string `json:"addr"`
	// State is one of the link states; Detail says more (the
	// impairment, the partition group).
	State  string `json:"state"`
	Detail string `json:"detail,omitempty"`
}

// Failing returns what ended a failed testbed: its last failure, or else
// its last step that failed; false when it passed or nothing was
// recorded (a test that failed outside the testbed's verbs).
func (v *View) Failing() (Failure, bool) {
	if v.Result != Failed {
		return Failure{}, false
	}
	if n := len(v.Failures); n > 0 {
		return v.Failures[n-1], true
	}
	for i := len(v.Steps) - 1; i >= 0; i-- {
		if s := v.Steps[i]; s.Err != "" {
			return Failure{Time: s.End, Machine: s.Machine, Step: s.Parent, Action: s.ID, Message: s.Err}, true
		}
	}
	return Failure{}, false
}
