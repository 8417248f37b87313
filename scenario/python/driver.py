"""shakedown's NixOS-driver front end for Python test scripts.

shakedown writes this file out and runs it with the host's python3 as

    python3 driver.py SCRIPT

with two pipes: fd 3 carries requests to shakedown, fd 4 its answers, one
JSON object per line. It binds the NixOS test driver's globals (each
machine by name, machines, start_all, subtest, retry, polling_condition,
log, t, ...) and runs SCRIPT in them, unchanged. Every machine verb is one
request; shakedown runs it with the same code as a Starlark scenario's, so
the front ends cannot drift apart. It uses the standard library only.
"""

import contextlib
import datetime
import difflib
import json
import os
import sys
import time
import traceback
import unittest

_req = _resp = None  # the pipes to shakedown, opened by _main
_next_id = 0


class ShakedownError(Exception):
    """A verb failed: the machine, what it waited for, what it saw."""


class RequestTimedOut(ShakedownError):
    """A wait ran past its timeout (the driver's exceptions are plain)."""


def _call(op, **fields):
    global _next_id
    _next_id += 1
    fields.update(op=op, id=_next_id)
    _req.write(json.dumps(fields) + "\n")
    line = _resp.readline()
    if not line:
        sys.exit(3)  # shakedown has gone: Ctrl-C or the global deadline
    answer = json.loads(line)
    if answer.get("error") is not None:
        kind = answer.get("kind")
        if kind == "args":
            raise TypeError(answer["error"])
        if kind == "timeout":
            raise RequestTimedOut(answer["error"])
        raise ShakedownError(answer["error"])
    return answer.get("value")


def _seconds(v):
    if isinstance(v, datetime.timedelta):
        return v.total_seconds()
    return v


def _timeout_kwargs(timeout):
    timeout = _seconds(timeout)
    return {} if timeout is None else {"timeout": timeout}


_VERBS = set()  # shakedown's machine verbs, from its hello
polling_conditions = []


def _run_callbacks():
    for c in list(polling_conditions):
        c.check()


class Machine:
    """A machine of the testbed, with the NixOS driver's verbs."""

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return f"<Machine '{self.name}'>"

    def _verb(self, verb, *args, timeout=None, **kwargs):
        _run_callbacks()
        kwargs.update(_timeout_kwargs(timeout))
        return _call("verb", machine=self.name, verb=verb, args=list(args), kwargs=kwargs)

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        if name in _VERBS:
            return lambda *args, **kwargs: self._verb(name, *args, **kwargs)
        close = difflib.get_close_matches(name, sorted(_VERBS | set(_PYTHON_VERBS)), n=1)
        hint = f" (did you mean .{close[0]}?)" if close else ""
        raise AttributeError(f"machine {self.name} has no verb .{name}{hint}")

    # The verbs whose NixOS signatures differ from shakedown's scenario
    # verbs are adapted here; the rest go through __getattr__.

    def execute(self, command, check_return=True, check_output=True, timeout=900):
        status, out = self._verb("execute", command, timeout=timeout)
        if not check_return:
            status = -1
        return status, out if check_output else ""

    def succeed(self, *commands, timeout=None):
        return "".join(self._verb("succeed", c, timeout=timeout) for c in commands)

    def fail(self, *commands, timeout=None):
        return "".join(self._verb("fail", c, timeout=timeout) for c in commands)

    def wait_until_succeeds(self, command, timeout=900):
        return self._verb("wait_until_succeeds", command, timeout=timeout)

    def wait_until_fails(self, command, timeout=900):
        return self._verb("wait_until_fails", command, timeout=timeout)

    def wait_for_unit(self, unit, user=None, timeout=900):
        return self._verb("wait_for_unit", unit, timeout=timeout, **_user(user))

    def systemctl(self, q, user=None):
        return self._verb("systemctl", q, **_user(user))

    def get_unit_info(self, unit, user=None):
        return self._verb("get_unit_info", unit, **_user(user))

    def get_unit_property(self, unit, property, user=None):
        return self._verb("get_unit_property", unit, property, **_user(user))

    def start_job(self, jobname, user=None):
        return self._verb("start_job", jobname, **_user(user))

    def stop_job(self, jobname, user=None):
        return self._verb("stop_job", jobname, **_user(user))

    def wait_for_open_port(self, port, addr="localhost", timeout=900):
        return self._verb("wait_for_open_port", port, addr, timeout=timeout)

    def wait_for_closed_port(self, port, addr="localhost", timeout=900):
        return self._verb("wait_for_closed_port", port, addr, timeout=timeout)

    def wait_for_file(self, filename, timeout=900):
        return self._verb("wait_for_file", filename, timeout=timeout)

    def wait_for_open_unix_socket(self, addr, is_datagram=False, timeout=900):
        if is_datagram:
            raise ShakedownError("wait_for_open_unix_socket: datagram sockets are not supported: shakedown connects to stream sockets")
        return self._verb("wait_for_open_unix_socket", addr, timeout=timeout)

    def wait_for_console_text(self, regex, timeout=None):
        return self._verb("wait_for_console_text", regex, timeout=timeout)

    def wait_for_text(self, regex, timeout=900):
        return self._verb("wait_for_text", regex, timeout=timeout)

    def wait_until_tty_matches(self, tty, regexp, timeout=900):
        return self._verb("wait_until_tty_matches", str(tty), regexp, timeout=timeout)

    def get_tty_text(self, tty):
        return self._verb("get_tty_text", str(tty))

    def send_key(self, key, delay=0.01, log=True):
        return self._verb("send_key", key)

    def send_chars(self, chars, delay=0.01):
        return self._verb("send_chars", chars)

    def wait_for_qmp_event(self, event_filter, timeout=60 * 10):
        # The filter is Python; shakedown sends each event for it to judge.
        deadline = time.monotonic() + _seconds(timeout)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RequestTimedOut(f"{self.name}: no QMP event matched within {timeout} seconds")
            event = self._verb("next_qmp_event", timeout=max(left, 0.001))
            if event_filter(event):
                return event

    def copy_from_vm(self, source, target_dir=""):
        return self._verb("copy_from_vm", source, target_dir)

    def start(self, allow_reboot=False):
        return self._verb("start")

    def sleep(self, secs):
        return self._verb("sleep", _seconds(secs))

    def log(self, msg):
        log.log(f"{self.name}: {msg}")

    def nested(self, msg, attrs=None):
        return log.nested(f"{self.name}: {msg}")

    def forward_port(self, host_port=8080, guest_port=80):
        addr = self._verb("forward_port", guest_port)
        if not addr.endswith(f":{host_port}"):
            log.log(f"{self.name}: port {guest_port} forwarded to {addr} (shakedown picks a free host port)")
        return addr

    def shell_interact(self, address=None):
        return self._verb("shell_interact")

    def ssh_backdoor_command(self):
        return self._verb("ssh_command")


_PYTHON_VERBS = [n for n in vars(Machine) if not n.startswith("_")]


def _user(user):
    return {} if user is None else {"user": user}


class Logger:
    """The driver's log: log, info, warning, error, and nested sections."""

    def log(self, message, attributes=None):
        _call("log", message=str(message))

    info = warning = error = log

    def nested(self, message, attributes=None):
        return _block("section", title=str(message))

    def print_serial_logs(self, enable):
        _call("serial", on=bool(enable))





@contextlib.contextmanager
def _block(op, **fields):
    """A subtest or a log section: opened, then closed with the exception
    that left it, if one did."""
    _call(op, begin=True, **fields)
    err = None
    try:
        yield
    except BaseException as e:
        err = f"{type(e).__name__}: {e}"
        raise
    finally:
        _call(op, begin=False, error=err, **fields)


def subtest(name):
    return _block("subtest", name=name)


log = Logger()


def start_all():
    _run_callbacks()
    _call("start_all")


def join_all():
    for m in machines:
        m.wait_for_shutdown()


def retry(fn, timeout=900):
    """Calls fn(last_try) every second until it returns true, as the
    driver does; a last call with True, then an exception."""
    for _ in range(int(_seconds(timeout))):
        if fn(False):
            return
        time.sleep(1)
    if not fn(True):
        raise RequestTimedOut(f"action timed out after {timeout} seconds")


class PollingCondition:
    def __init__(self, fun, seconds_interval=2.0, description=None):
        self.fun = fun
        self.seconds_interval = seconds_interval
        self.description = description or fun.__doc__ or fun.__name__
        self.last_called = float("-inf")
        self.entered = False

    def check(self, force=False):
        if self.entered or (not force and time.monotonic() - self.last_called < self.seconds_interval):
            return True
        self.last_called = time.monotonic()
        self.entered = True  # the condition's own commands skip it
        try:
            ok = self.fun()
        except Exception as e:
            raise ShakedownError(f"polling condition failed: {self.description}: {e}") from e
        finally:
            self.entered = False
        if ok is False:
            raise ShakedownError(f"polling condition failed: {self.description}")
        return True


def polling_condition(fun_=None, *, seconds_interval=2.0, description=None):
    class Poll:
        def __init__(self, fun):
            self.condition = PollingCondition(fun, seconds_interval, description)

        def __enter__(self):
            polling_conditions.append(self.condition)

        def __exit__(self, *exc):
            polling_conditions.remove(self.condition)

        def wait(self, timeout=900):
            def passes(last):
                try:
                    return self.condition.check(force=True)
                except ShakedownError:
                    if last:
                        raise
                    return False

            retry(passes, timeout=timeout)

    return Poll if fun_ is None else Poll(fun_)


def serial_stdout_on():
    _call("serial", on=True)


def serial_stdout_off():
    _call("serial", on=False)


class VLan:
    def __init__(self, name, nr):
        self.name, self.nr = name, nr

    def __repr__(self):
        return f"<VLan {self.nr} '{self.name}'>"


class Driver:
    """What scripts reach through the global driver."""

    def __init__(self):
        self.machines = machines
        self.vlans = vlans
        self.polling_conditions = polling_conditions

    def test_symbols(self):
        return dict(_globals)


machines = []
vlans = []
t = unittest.TestCase()
t.maxDiff = None
driver = Driver()

_globals = {
    "__name__": "__main__",
    "machines": machines,
    "vlans": vlans,
    "driver": driver,
    "start_all": start_all,
    "join_all": join_all,
    "subtest": subtest,
    "retry": retry,
    "polling_condition": polling_condition,
    "serial_stdout_on": serial_stdout_on,
    "serial_stdout_off": serial_stdout_off,
    "log": log,
    "t": t,
    "os": os,
    "Machine": Machine,
    "RequestTimedOut": RequestTimedOut,
    "ShakedownError": ShakedownError,
}


def _bind(hello):
    """Binds shakedown's machines, networks and verbs."""
    _VERBS.update(hello["verbs"])
    machines.extend(Machine(m) for m in hello["machines"])
    vlans.extend(VLan(v["name"], v["number"]) for v in hello["vlans"])
    for m in machines:
        _globals[m.name] = m
    if len(machines) == 1:
        _globals["machine"] = machines[0]


def _check(path, spec):
    """Compiles the script and looks for verbs no machine has; prints the
    first problem as JSON (line, col, msg), or nothing."""
    import ast

    with open(path, encoding="utf-8") as f:
        source = f.read()
    try:
        tree = ast.parse(source, path)
    except SyntaxError as e:
        print(json.dumps({"line": e.lineno or 0, "col": e.offset or 0, "msg": f"SyntaxError: {e.msg}"}))
        return
    known = set(spec["verbs"]) | set(_PYTHON_VERBS) | {"name"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in spec["machines"]:
            if node.attr not in known:
                close = difflib.get_close_matches(node.attr, sorted(known), n=1)
                hint = f" (did you mean .{close[0]}?)" if close else ""
                msg = f"machine {node.value.id} has no verb .{node.attr}{hint}"
                print(json.dumps({"line": node.lineno, "col": node.col_offset + 1, "msg": msg}))
                return


def _connect():
    global _req, _resp
    _req = os.fdopen(3, "w", buffering=1, encoding="utf-8")
    _resp = os.fdopen(4, "r", encoding="utf-8")
    _bind(json.loads(_resp.readline()))


def _interact(banner):
    """The driverInteractive: Python's prompt with the globals bound."""
    import code

    _connect()
    try:
        import readline  # noqa: F401 (line editing and history at the prompt)
    except ImportError:
        pass
    code.interact(banner=banner, local=_globals, exitmsg="")


def _main(path, display):
    _connect()
    with open(path, encoding="utf-8") as f:
        source = f.read()
    _globals["__file__"] = display
    code = compile(source, display, "exec")
    try:
        exec(code, _globals)
    except BaseException as e:
        if isinstance(e, SystemExit) and not e.code:
            return
        # The script's frames and its callees', without this file's.
        tb = [f for f in traceback.extract_tb(e.__traceback__) if f.filename != __file__]
        mine = [f for f in tb if f.filename == display]
        where = mine[-1] if mine else None
        text = "Traceback (most recent call last):\n" + "".join(traceback.format_list(tb))
        text += "".join(traceback.format_exception_only(e))
        message = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        sys.stderr.write(text)
        _call("fail", file=display, line=where.lineno if where else 0, message=message, traceback="")
        sys.exit(1)


if __name__ == "__main__":
    if sys.argv[1] == "--check":
        _check(sys.argv[2], json.loads(os.environ["SHAKEDOWN_CHECK"]))
    elif sys.argv[1] == "--interactive":
        _interact(sys.argv[2])
    else:
        _main(sys.argv[1], sys.argv[2])
