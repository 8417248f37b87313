package qemu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// ErrBadState is wrapped by the errors for a saved state file that cannot
// be what SaveState wrote: missing, empty, or not a QEMU migration stream.
var ErrBadState = errors.New("not a saved machine state")

// stateMagic opens every QEMU migration stream: "QEVM" and version 3.
var stateMagic = []byte("QEVM\x00\x00\x00\x03")

// migrationPoll is how often a save or load in progress is asked after:
// a small machine's state is written in tens of milliseconds.
const migrationPoll = 2 * time.Millisecond

// migration is the part of query-migrate's answer that a save waits on.
type migration struct {
	Status    string `json:"status"` // "setup", "active", "completed", "failed", ...
	ErrorDesc string `json:"error-desc"`
}

// SaveState writes the machine's RAM and device state to path, through
// QMP's migrate to a file, and returns once it is complete. The machine
// should be paused (Stop) so that the state is one moment's; it stays
// paused afterwards, with its disks flushed and released until Cont, which
// is the moment to copy them. QEMU 7.2 has no file: migration, so QEMU's
// exec: runs cat; path must be absolute.
func (c *Client) SaveState(ctx context.Context, path string) error {
	// The default bandwidth cap (128 MiB/s) is for live migration over a
	// network; a paused machine into a local file wants none.
	err := c.Execute(ctx, "migrate-set-parameters", map[string]any{"max-bandwidth": int64(1) << 40}, nil)
	if err == nil {
		err = c.Execute(ctx, "migrate", map[string]any{"uri": "exec:cat > " + shellQuote(path)}, nil)
	}
	if err == nil {
		err = c.awaitMigration(ctx, "save")
	}
	if err != nil {
		return fmt.Errorf("save state to %s: %w", path, err)
	}
	return nil
}

// AwaitLoaded waits until a QEMU started with Config.State has loaded
// it, and runs the guest from there. QEMU exits when the stream is bad,
// so a caller should report the process's Output along with the error.
func (c *Client) AwaitLoaded(ctx context.Context) error {
	err := c.awaitMigration(ctx, "load")
	if err == nil {
		err = c.runLoaded(ctx)
	}
	if err != nil {
		return fmt.Errorf("load state: %w", err)
	}
	return nil
}

// CheckState tells whether path can be a state SaveState wrote, from its
// first bytes: a missing, empty or foreign file is found before QEMU is
// asked to load it.
func CheckState(path string) error {
	f, err := openState(path)
	if err == nil {
		f.Close()
	}
	return err
}

// openState opens a state file after checking its first bytes, and
// leaves it at its start.
func openState(path string) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadState, err)
	}
	head := make([]byte, len(stateMagic))
	if n, _ := f.ReadAt(head, 0); n < len(head) || !bytes.Equal(head, stateMagic) {
		f.Close()
		return nil, fmt.Errorf("%w: %s does not start as a QEMU migration stream (QEVM, version 3)", ErrBadState, path)
	}
	return f, nil
}

// runLoaded runs a guest whose state has loaded. The state carries the
// run state it was saved in, paused (SaveState wants a paused machine),
// which QEMU takes on once the load is complete, a moment after
// query-migrate says so; a cont before that moment would be overruled.
func (c *Client) runLoaded(ctx context.Context) error {
	for {
		st, err := c.QueryStatus(ctx)
		if err != nil {
			return err
		}
		switch st.Status {
		case "running":
			return nil
		case "inmigrate", "prelaunch":
		default:
			return c.Cont(ctx)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("loaded, but still %s: %w", st.Status, context.Cause(ctx))
		case <-time.After(migrationPoll):
		}
	}
}

// awaitMigration polls query-migrate until the migration completes or
// fails; what is "save" or "load", for the error.
func (c *Client) awaitMigration(ctx context.Context, what string) error {
	last := "not started"
	for {
		var m migration
		if err := c.Execute(ctx, "query-migrate", nil, &m); err != nil {
			return fmt.Errorf("%s: query-migrate (last status %s): %w", what, last, err)
		}
		switch m.Status {
		case "completed":
			return nil
		case "failed", "cancelled":
			return fmt.Errorf("%s %s: %s", what, m.Status, m.ErrorDesc)
		case "":
		default:
			last = m.Status
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s still %s: %w", what, last, context.Cause(ctx))
		case <-time.After(migrationPoll):
		}
	}
}

// shellQuote quotes s for the shell that QEMU's exec: migration runs.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
