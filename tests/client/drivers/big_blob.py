#!/usr/bin/env python3
"""A driver that sends one big BLOB on request, written with nothing but the standard library.

Device "Big Blob": SEND (switch GO) makes it send IMAGE.DATA, $BIG_BLOB_BYTES bytes (50 MB by
default) of random.Random($BIG_BLOB_SEED) data, format ".bin", as one setBLOBVector whose base64
is written in 72-character lines with an enclen attribute, as libindi does, about 1 MB at a time
(so that the driver itself never holds the whole text). SEND is Busy while sending and Ok after.

The line length matters: Debian's indiserver (libindi 1.9.9) trusts enclen to be laid out in
libindi's 72-character lines; in 76-character lines (base64.encodebytes) it waits for more input
forever.
"""

import base64
import os
import random
import re
import sys

DEVICE = "Big Blob"
SIZE = int(os.environ.get("BIG_BLOB_BYTES", 50 * 1024 * 1024))
SEED = int(os.environ.get("BIG_BLOB_SEED", "7"))
CHUNK = 54 * 16384   # a multiple of 54 bytes: whole 72-character lines
LINE = 72

out = sys.stdout.buffer


def send(xml):
    out.write(xml.encode() if isinstance(xml, str) else xml)
    out.flush()


def definitions():
    send(f"<defSwitchVector device='{DEVICE}' name='SEND' label='Send' group='Main' state='Idle' perm='rw' "
         f"rule='AtMostOne' timeout='60'>\n<defSwitch name='GO' label='Go'>Off</defSwitch>\n</defSwitchVector>\n"
         f"<defBLOBVector device='{DEVICE}' name='IMAGE' label='Image' group='Main' state='Idle' perm='ro' "
         f"timeout='60'>\n<defBLOB name='DATA' label='Data'/>\n</defBLOBVector>\n")


def send_blob():
    send(f"<setSwitchVector device='{DEVICE}' name='SEND' state='Busy'>\n<oneSwitch name='GO'>On</oneSwitch>\n"
         f"</setSwitchVector>\n")
    data = random.Random(SEED).randbytes(SIZE)
    enclen = (SIZE + 2) // 3 * 4
    send(f"<setBLOBVector device='{DEVICE}' name='IMAGE' state='Ok' timeout='60'>\n"
         f"  <oneBLOB name='DATA' size='{SIZE}' enclen='{enclen}' format='.bin'>\n")
    view = memoryview(data)
    for pos in range(0, SIZE, CHUNK):
        text = base64.b64encode(view[pos:pos + CHUNK])
        out.write(b"".join(text[i:i + LINE] + b"\n" for i in range(0, len(text), LINE)))
    send("  </oneBLOB>\n</setBLOBVector>\n")
    send(f"<setSwitchVector device='{DEVICE}' name='SEND' state='Ok'>\n<oneSwitch name='GO'>Off</oneSwitch>\n"
         f"</setSwitchVector>\n")


ELEMENT = re.compile(rb"<getProperties[^>]*>|<newSwitchVector[^>]*>.*?</newSwitchVector\s*>", re.S)
buffer = b""
while True:
    chunk = os.read(0, 65536)
    if not chunk:
        break
    buffer += chunk
    while True:
        m = ELEMENT.search(buffer)
        if not m:
            break
        buffer = buffer[m.end():]
        if m.group().startswith(b"<getProperties"):
            definitions()
        elif b"'SEND'" in m.group() or b'"SEND"' in m.group():
            send_blob()
