#!/usr/bin/env python3
"""Container health check: exit 0 if the INDI server answers, else 1 (with the reason on stdout).

Connects to 127.0.0.1:$INDI_PORT (7624), sends <getProperties version="1.7"/> and waits up to
$INDI_HEALTH_TIMEOUT (8) seconds for a property definition: a server whose drivers all died, or that
accepts connections but never answers, is unhealthy.

With INDI_HEALTHCHECK=web it checks indi-web instead: GET /api/info/version on 127.0.0.1:$INDI_WEB_PORT
(8624) must answer (200, or 401/403 when indi-web is password protected).
"""

import os
import socket
import sys
import time
import urllib.error
import urllib.request


def check_indi() -> str | None:
    port = int(os.environ.get("INDI_PORT", "7624"))
    deadline = time.monotonic() + float(os.environ.get("INDI_HEALTH_TIMEOUT", "8"))
    data = b""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b'<getProperties version="1.7"/>\n')
        while b"<def" not in data and len(data) < 1 << 20:
            left = deadline - time.monotonic()
            if left <= 0:
                return f"no property definition from 127.0.0.1:{port} in time ({len(data)} bytes received)"
            s.settimeout(left)
            chunk = s.recv(65536)
            if not chunk:
                return f"127.0.0.1:{port} closed the connection without defining a property"
            data += chunk
    return None if b"<def" in data else f"no property definition in the first {len(data)} bytes"


def check_web() -> str | None:
    port = int(os.environ.get("INDI_WEB_PORT", "8624"))
    url = f"http://127.0.0.1:{port}/api/info/version"
    try:
        with urllib.request.urlopen(url, timeout=8) as reply:
            return None if reply.status == 200 else f"{url}: HTTP {reply.status}"
    except urllib.error.HTTPError as exc:
        return None if exc.code in (401, 403) else f"{url}: HTTP {exc.code}"


def main() -> int:
    try:
        problem = check_web() if os.environ.get("INDI_HEALTHCHECK") == "web" else check_indi()
    except OSError as exc:
        problem = str(exc) or type(exc).__name__
    if problem:
        print(f"unhealthy: {problem}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
