// Package scenario runs shakedown scenarios: Starlark files that declare
// machines and drive them with the verbs of the Go API, as NixOS test
// scripts do in Python.
//
// A scenario is run in two passes over one compiled program. Load executes
// the file up to its first step (a machine verb, start_all or subtest) to
// learn the declared machines and to report syntax errors, unknown verbs
// and bad arguments before anything boots. Run executes it again from the
// start against a fresh testbed, then calls test() if the file defines it.
// Starlark is hermetic, so both passes see the same declarations.
//
// Networks are declared with network(name, mtu=, capture=) and joined with
// machine(..., networks=[...]); block, unblock, partition, heal and
// net.impair(machine, loss=, delay=, ...) cut and degrade them. A machine
// takes Debian packages= and a lock_file= that pins them, a path beside
// the scenario as files are. Session
// is the interactive form: Open boots the declared machines and Eval runs
// what the user types with them bound.
//
// This package is a front end (layer 1): it imports the root package
// shakedown and go.starlark.net, and nothing imports it but the CLI.
package scenario
