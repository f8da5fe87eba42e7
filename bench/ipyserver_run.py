"""Run indipyserver (a pure-Python INDI server) on a port with executable drivers.

Usage: python ipyserver_run.py PORT DRIVER [DRIVER ...]   (each DRIVER an executable path)
"""

from __future__ import annotations

import asyncio
import logging
import sys

from indipyserver import IPyServer


def main() -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    port = int(sys.argv[1])
    server = IPyServer(host="127.0.0.1", port=port, maxconnections=10)  # 10 is its maximum
    for driver in sys.argv[2:]:
        server.add_exdriver(driver)
    print(f"indipyserver listening to port {port}", flush=True)
    asyncio.run(server.asyncrun())


if __name__ == "__main__":
    main()
