#!/usr/bin/env python3
"""A driver that is a test's puppet: it relays its stdin/stdout to a unix socket the test listens on.

The test accepts the connection and then speaks as the driver (like libindi's integs fakedriver).
The socket path comes from $INDI_TEST_RELAY. The relay exits when either side closes.
"""

import os
import selectors
import socket
import sys

sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
sock.connect(os.environ["INDI_TEST_RELAY"])
# Tell the test which process this is, so it can kill or inspect it.
sock.sendall(f"{os.getpid()}\n".encode())
stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
sel = selectors.DefaultSelector()
sel.register(stdin, selectors.EVENT_READ)
sel.register(sock, selectors.EVENT_READ)
while True:
    for key, _ in sel.select():
        if key.fileobj == stdin:
            data = os.read(stdin, 65536)
            if not data:
                sys.exit(0)
            sock.sendall(data)
        else:
            data = sock.recv(65536)
            if not data:
                sys.exit(0)
            view = memoryview(data)
            while view:
                view = view[os.write(stdout, view):]
