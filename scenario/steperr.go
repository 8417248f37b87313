package scenario

import (
	"errors"
	"strings"

	"github.com/shakedown-dev/shakedown"
)

// stepMessage renders a verb's error for the step's report: a machine's
// error without the machine's name (the step's title says which machine
// it was) and with its last console lines; each machine's in turn for
// start_all's joined errors.
func stepMessage(machine string, err error) string {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var parts []string
		for _, e := range j.Unwrap() {
			parts = append(parts, stepMessage("", e))
		}
		return strings.Join(parts, "\n")
	}
	var me *shakedown.MachineError
	if errors.As(err, &me) {
		if me.Machine == machine {
			return me.Err.Error() + me.ConsoleText()
		}
		return me.Report()
	}
	return err.Error()
}
