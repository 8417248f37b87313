// Package bench measures what a shakedown test waits for: a machine's boot
// to its first command, its idle memory and the round trip of a command, and
// the same figures of the NixOS test driver's shell backdoor on the same
// kernel and busybox, so that both come from one run on one host:
//
//	go test -run '^$' -bench . ./bench/...
//
// It holds benchmarks only; it imports the root package, qemu and the image
// packages, and nothing imports it.
package bench
