// Package registrystub is a stand-in OCI registry for tests: images
// pushed by the test (Push, PushTarball), pulled by machines, with a log
// of every pull and push to assert on, and an airgap mode that refuses
// every pull, so that "nothing was pulled from the registry" is a check a
// test can make.
//
// It owns the pull and push logs and the airgap mode. The registry itself
// is go-containerregistry's pkg/registry, in memory; serving, TLS and
// HTTP-level faults are a webstub.Server's (Web), whose request log holds
// every request, pings and uploads included. It imports the standard
// library, go-containerregistry, stub/web, stub/tlsca and
// internal/eventlog, nothing of
// shakedown's root, so that it stays usable in any Go test.
//
//	ca, err := tlsca.New(tlsca.Options{})
//	s := registrystub.New(registrystub.Config{CA: ca, Logf: t.Logf})
//	t.Cleanup(func() { s.Close() })
//	addr, err := s.Start("") // 127.0.0.1:PORT, over TLS
//	digest, err := s.Push(ctx, "library/alpine:3.20", img)
//	p, err := s.WaitForPull(ctx, registrystub.Match{Repo: "library/alpine", Kind: registrystub.Manifest})
//	s.SetRefusePulls(true) // airgap: every pull answered 403 DENIED, and logged
//
// Pulls are the requests that fetch content: GET and HEAD of manifests
// and blobs. The test's own pushes (Push, PushTarball) are in neither
// log, and never refused.
package registrystub
