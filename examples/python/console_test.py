# A login on a virtual terminal, typed on the keyboard and read back from
# the screen by OCR, in the NixOS test driver's dialect.
machine.start()
machine.wait_for_unit("getty")

with subtest("a shell answers on tty1"):
    machine.wait_until_tty_matches("1", r"#")
    machine.send_chars("echo typed-on-the-keyboard > /tmp/typed\n")
    machine.wait_for_file("/tmp/typed")
    t.assertEqual(machine.succeed("cat /tmp/typed").strip(), "typed-on-the-keyboard")

with subtest("the screen shows what was typed"):
    machine.send_chars("echo HELLO SCREEN\n")
    machine.wait_until_tty_matches("1", "HELLO SCREEN")
    machine.dump_tty_contents(1)
    machine.wait_for_text("HELLO SCREEN", timeout=120)
    assert "HELLO" in machine.get_screen_text()

with subtest("keys and the monitor"):
    machine.send_key("ctrl-l")
    machine.send_chars("clear\n")
    out = machine.send_monitor_command("info status")
    assert "running" in out, out
    machine.wait_for_unit("serial-getty")
    machine.send_console("echo SERIAL-$((6*7))\n")
    machine.wait_for_console_text("SERIAL-42")
    assert "shakedown-agent" in machine.get_console_log()

with subtest("QEMU's events"):
    machine.send_monitor_command("stop")
    machine.sleep(0.5)
    machine.send_monitor_command("cont")
    event = machine.wait_for_qmp_event(lambda e: e["event"] == "RESUME", timeout=30)
    log.info(f"QEMU said {event['event']} at {event['timestamp']}")
    assert machine.succeed("echo still here").strip() == "still here"

log.info(f"for a shell: {machine.ssh_backdoor_command()}")
machine.shell_interact()
