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
// machine(name, ...) takes the fields of shakedown.MachineConfig as
// keywords in snake_case (memory= and cpus= for MemoryMiB and CPUs), and
// the values of its structs come from builtins named for them, whose
// keywords are their fields too: service(name, command, env=, after=,
// restart=, ready=readiness(port=, file=, command=, timeout=)),
// disk(name=, size_mib=, read_only=, contents=, image=), debian(suite=,
// mirror=, packages=, units=, size_mib=) for a full Debian machine, and
// file(host=, data=, mode=) among files=. Host paths (files, lock_file=,
// kernel=, a disk's contents=) are relative to the scenario's directory.
//
// A machine's verbs are the NixOS driver's: start, shutdown, crash,
// reboot, wait_for_shutdown; execute, succeed, fail, wait_until_succeeds,
// wait_until_fails, and exec(cmd, env=, dir=, stdin=) for a struct of
// status, signal, stdout and stderr; wait_for_unit, unit_state,
// require_unit_state and systemctl, which returns (status, output);
// wait_for_file, wait_for_open_port, wait_for_closed_port,
// wait_for_open_unix_socket, wait_for_console_text; copy_from_host,
// copy_from_vm, screenshot, forward_port, block, unblock and pid. Each
// takes timeout=. Its fields are .name, .addr and .addr6.
//
// Networks are declared with network(name, mtu=, capture=, seed=) and
// joined with machine(..., networks=[...]); net.host(name, number=)
// declares a named host endpoint on one, with .name, .network, .number,
// .addr, .addr6, block() and unblock(). block, unblock, partition, heal,
// net.partition, net.heal and net.impair(peer, loss=, delay=, ...) cut and
// degrade them, for machines and hosts alike. accel() and output_dir()
// are the testbed's, and so are snapshot(name), restore(name) and
// checkpoint(key, fn), which runs fn() once and restores its end state
// from the cache in later runs (shakedown.Testbed.Checkpoint). A machine's or host's address, like a network's
// .number, makes the testbed, so the load pass stops there as at a step.
//
// dns_stub(network, name, zones={origin: [records]}, records=[...],
// testbed_domain="test.", updates={key: secret}, unsigned=, number=) is a
// host that serves DNS (package dnsstub, attached with dnsnet), with the
// names of the machines and hosts declared before the testbed is made
// under testbed_domain, taking DNS UPDATEs signed with the TSIG keys of
// updates (or unsigned ones, with unsigned=True); its verbs add(*records),
// remove(name, *types), set_fault(name, rcode=, drop=, truncate=, delay=,
// types=, subtree=, times=), clear_fault(name=), queries(name=, type=) and
// wait_for_query(name=, type=, update=, timeout=) change it and read its
// query log. pdns_api(dns, network, name, api_key=, port=8081) serves the
// PowerDNS HTTP API of a dns_stub's zones (package pdnsapi) at
// http://NAME:PORT, with set_fault(status=, retry_after=, method=, path=,
// times=), clear_faults(), requests(method=, path=, status=) and
// wait_for_request(..., timeout=).
//
// The other stand-ins are hosts too, declared the same way, their
// keywords the fields of their Go configurations. ca(name=, validity=,
// leaf_validity=) is a test CA (package tlsca), with .pem; a machine trusts
// it with machine(trust=[ca]): an initramfs machine through the bundle
// alone, a debian= machine through /usr/local/share/ca-certificates, the
// scenario running update-ca-certificates once it has booted.
// web_stub(network, name, port=, ca=, dir=, tls=) serves HTTP(S) (package
// webstub, with webnet): handle(pattern, body=, status=, content_type=),
// set_fault(path, status=, retry_after=, delay=, drop=, times=),
// clear_fault(path), clear_faults(), requests(method=, host=, path=,
// path_prefix=, status=) and wait_for_request(..., timeout=).
// registry_stub(network, name, ca=, port=) is an OCI registry (package
// registrystub) that machines pull NAME/repo:tag from: push_tarball(path,
// ref), push_image(ref, files={path: content}, entrypoint=, cmd=, env=), set_refuse_pulls(refuse), pulls(repo=, reference=, kind=, method=),
// wait_for_pull(..., timeout=), and the web stand-in's faults and request
// log. dhcp_stub(network, name, router=, dns=, domain=, search=, mtu=,
// ntp=, lease_time=, pool=(first, last), static={mac: addr}, planned=)
// serves DHCP from 192.168.v.250 (package dhcpstub, with dhcpnet), its
// addresses strings, host numbers or machines and hosts: set_outage(on),
// set_fault(drop=, nak=, delay=, types=, mac=, times=), clear_fault(),
// leases(), events(type=, reply=, mac=, hostname=, addr=),
// wait_for_lease(mac=, hostname=, addr=, timeout=), wait_for_event and
// clear_log(), after which the waits see only what comes next.
// Machines take its leases with manual_addresses=True and a client: in an
// initramfs machine busybox's udhcpc with files={"/etc/udhcpc.script":
// udhcpc_script()}. acme_stub(network, name, dns=, ca=, cert_lifetime=,
// validation_timeout=, terms_of_service=) is an ACME CA (package acmestub,
// with acmenet) validating through the dns_stub given, with
// .directory_url, issued(), events(kind=, name=, problem_type=),
// wait_for(..., timeout=), set_fault(bad_nonce=, fail_validations=,
// delay=, rate_limit_orders=, unavailable_orders=, retry_after=) and
// clear_fault(). Each wait_for verb's timeout defaults to
// shakedown.DefaultWait.
//
// net.host and the stand-ins that serve clients (dns_stub, web_stub,
// registry_stub, pdns_api, acme_stub) take gateway=: a router machine on
// their network (or its address), their default route, so that machines
// on other networks reach them through it (shakedown.HostOptions.Gateway).
// examples/reference.star puts them all together.
//
// Session is the interactive form: Open boots the declared machines and
// Eval runs what the user types with them bound.
//
// python_test("test.py") makes the test a Python 3 script in the NixOS
// driver's dialect, run unchanged by the host's python3 in driver.py
// (embedded from python/), which binds the driver's globals and sends each
// verb over a pipe to be run through the same verb table as Starlark's
// (python.go, pyrpc.go); RunPython does it for machines declared in Go,
// and Session.Python is its interactive prompt. Its commands run under
// bash -c 'set -euo pipefail; ...', as the driver runs them.
//
// This package is a front end (layer 1): it imports the root package
// shakedown, package screen, the stand-ins (stub/... with their testbed packages,
// github.com/miekg/dns and insomniacslk/dhcp for the names of record and
// message types) and go.starlark.net, and nothing imports it but the CLI.
package scenario
