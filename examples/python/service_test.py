# A service with its units, in the NixOS test driver's dialect: the script
# a NixOS test would have as its testScript, unchanged.
import json

start_all()
web.wait_for_unit("web.service")
web.wait_for_open_port(80)

with subtest("the unit serves the page"):
    page = web.succeed("wget -qO- http://127.0.0.1/")
    t.assertIn("hello from a unit", page)
    web.wait_for_file("/run/seeded")

with subtest("the unit's properties"):
    info = web.get_unit_info("web")
    assert info["ActiveState"] == "active", json.dumps(info)
    assert web.get_unit_property("web", "SubState") == "running"
    web.require_unit_state("web", "active")

with subtest("stop and start it"):
    status, _ = web.stop_job("web")
    assert status == 0
    web.wait_for_closed_port(80)
    web.fail("wget -qO- http://127.0.0.1/")
    web.start_job("web")
    web.wait_for_open_port(80, timeout=30)

with subtest("commands run under bash with set -euo pipefail"):
    web.fail("false | true")  # pipefail: the pipeline fails
    web.succeed("time true")  # bash's keyword, not a missing program
    status, out = web.execute("echo ${BASH_VERSINFO[0]}")
    assert status == 0 and int(out) >= 5, out

with subtest("a wait that cannot pass times out, and the script can catch it"):
    try:
        web.wait_until_succeeds("test -e /nonexistent", timeout=3)
    except Exception as e:
        log.info(f"timed out, as it should: {type(e).__name__}")
    else:
        raise AssertionError("wait_until_succeeds did not time out")

@polling_condition
def still_serving():
    web.succeed("wget -qO- http://127.0.0.1/ >/dev/null")

with still_serving:
    web.succeed("sleep 1")
    web.succeed("true")
still_serving.wait()

retry(lambda last_try: web.execute("test -e /run/seeded")[0] == 0, timeout=10)
