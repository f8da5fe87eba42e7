"""The indi-web command line: a user's mistake is one line on stderr and a non-zero exit status."""

from __future__ import annotations

import os
import signal
import socket
import subprocess

import pytest
from web_helpers import INDI_WEB

from helpers import wait_until

TIMEOUT = 30.0


def run_web(args: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    proc = subprocess.Popen([INDI_WEB, "--host", "127.0.0.1", *args], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise AssertionError(f"indi-web {' '.join(args)} was still running after {TIMEOUT} s") from None
    return proc.returncode, out.decode(), err.decode()


def assert_one_line_error(result: tuple[int, str, str], status: int, *needles: str) -> None:
    code, out, err = result
    assert "Traceback" not in out + err, err
    lines = err.splitlines()
    assert len(lines) == 1, f"stderr should be one line:\n{err}"
    assert code == status, f"exit status {code}, expected {status}: {err}"
    assert lines[0].startswith("indi-web: ")
    for needle in needles:
        assert needle in lines[0], f"{needle!r} missing from {lines[0]}"


def test_web_port_in_use(tmp_path, home_env):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = run_web(["--port", str(port), "--conf", str(tmp_path / "conf")], home_env)
    assert_one_line_error(result, 1, f"cannot listen on port {port}: Address already in use", "--port")


def test_unusable_conf_dir(tmp_path, home_env):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert_one_line_error(run_web(["--port", "0", "--conf", str(blocker / "indi")], home_env), 1,
                          "cannot create configuration directory")
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "profiles.db").write_bytes(b"this is not an SQLite database, but some other file" * 100)
    assert_one_line_error(run_web(["--port", "0", "--conf", str(conf)], home_env), 1,
                          f"cannot use profile database {conf / 'profiles.db'}")


def test_missing_directories_and_programs(tmp_path, home_env):
    conf = ["--port", "0", "--conf", str(tmp_path / "conf")]
    assert_one_line_error(run_web([*conf, "--xmldir", str(tmp_path / "nowhere")], home_env), 1,
                          "--xmldir", "does not exist")
    assert_one_line_error(run_web([*conf, "--server", str(tmp_path / "indiserver")], home_env), 1,
                          "is not an executable file")
    assert_one_line_error(run_web([*conf, "--driver-dir", str(tmp_path / "bin")], home_env), 1,
                          "--driver-dir", "does not exist")
    assert_one_line_error(run_web([*conf, "--logfile", str(tmp_path / "no" / "log")], home_env), 1,
                          "cannot open log file")


@pytest.mark.parametrize("args, needle", [
    (["--port", "http"], "is not a port number"),
    (["--indi-port", "0"], "a profile needs a fixed port"),
    (["--script-timeout", "-1"], "above 0"),
    (["--frobnicate"], "unrecognized arguments"),
    (["--server-options=-p 7000"], "indi-web sets -p itself"),
    (["--server-options=--fifo /tmp/f"], "indi-web sets --fifo itself"),
    (["--server-options=indi_simulator_ccd"], "'indi_simulator_ccd' is not an option: drivers belong in profiles"),
    (["--server-options=--frobnicate"], "--server-options: unrecognized arguments: --frobnicate"),
    (["--server-options=--allow 10.0.0.0/33"], "--allow"),
    (["--server-options=--version"], "--version is not a server option"),
    (["--server-options=--allow '10.0.0.0/8"], "No closing quotation"),
])
def test_usage_errors(args, needle, tmp_path, home_env):
    assert_one_line_error(run_web([*args, "--conf", str(tmp_path / "conf")], home_env), 2, needle)


def test_help_and_version(home_env):
    code, out, err = run_web(["--help"], home_env)
    assert code == 0 and "--allow-reboot" in out and "--indi-port" in out and "--xmldir" in out
    code, out, err = run_web(["--version"], home_env)
    assert code == 0 and out.startswith("indi-web ")


def test_logfile_and_a_new_conf_dir(tmp_path, home_env):
    logfile = tmp_path / "web.log"
    conf = tmp_path / "new" / "indi"
    proc = subprocess.Popen([INDI_WEB, "--host", "127.0.0.1", "--port", "0", "--conf", str(conf),
                             "--logfile", str(logfile)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True,
                            env=home_env)
    try:
        wait_until(lambda: logfile.exists() and "listening on http://" in logfile.read_text(), what="log line")
        assert (conf / "profiles.db").is_file()
        assert "created profile 'Simulators'" in logfile.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0 and err == b"" and out == b""
