"""Helpers for indi-web tests: a real ``indi-web`` process with an HTTP client, and Debian's indi_getprop."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess

import httpx

from helpers import OUR_BIN, ServerProcess, children_of, wait_until

INDI_WEB = shutil.which("indi-web", path=OUR_BIN) or os.path.join(OUR_BIN, "indi-web")
SYSTEM_XML = "/usr/share/indi"
INDI_GETPROP = "/usr/bin/indi_getprop"
TIMEOUT = 15.0


def system_xmldir() -> list[str]:
    """--xmldir /usr/share/indi when INDI's catalogue is installed (our simulators are offered anyway)."""
    return ["--xmldir", SYSTEM_XML] if os.path.isfile(os.path.join(SYSTEM_XML, "drivers.xml")) else []


class WebProcess(ServerProcess):
    """An indi-web process on a free port, its log collected, with an HTTP client to it."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        super().__init__([INDI_WEB, "--host", "127.0.0.1", "--port", "0", *args], env=env)
        self.port = int(self.wait_log(r"listening on http://[^ ]+:(\d+)", timeout=TIMEOUT).group(1))
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30)

    def get(self, path: str, **kwargs) -> httpx.Response:
        return self.http.get(path, **kwargs)

    def post(self, path: str, **kwargs) -> httpx.Response:
        return self.http.post(path, **kwargs)

    def put(self, path: str, **kwargs) -> httpx.Response:
        return self.http.put(path, **kwargs)

    def delete(self, path: str, **kwargs) -> httpx.Response:
        return self.http.delete(path, **kwargs)

    def ok(self, method: str, path: str, **kwargs):
        """The JSON of a request that must succeed."""
        response = self.http.request(method, path, **kwargs)
        assert response.status_code == 200, f"{method} {path}: {response.status_code} {response.text}"
        return response.json()

    def full_status(self) -> dict:
        return self.ok("GET", "/api/server/status/full")

    def wait_status(self, condition, timeout: float = TIMEOUT, what: str = "status"):
        """Poll the full status until condition(status) is true; returns that status."""
        return wait_until(lambda: (lambda s: s if condition(s) else None)(self.full_status()), timeout=timeout,
                          interval=0.05, what=what)

    def descendants(self) -> list[int]:
        return children_of(self.proc.pid)

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        self.http.close()
        return super().stop(sig)




def indi_getprop(port: int, *props: str, timeout: float = 3) -> dict[str, str]:
    """Debian's indi_getprop against a port: {"Dev.PROP.ELEM": value}."""
    out = subprocess.run([INDI_GETPROP, "-p", str(port), "-t", str(int(timeout)), *props], capture_output=True,
                         text=True, timeout=timeout + 10).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def wait_for(condition, timeout: float = TIMEOUT, what: str = "condition"):
    return wait_until(condition, timeout=timeout, interval=0.05, what=what)
