#!/usr/bin/env python3
"""BLOBs sent with Device.send_blob, and what send_blob returned, in order.

SEND starts a task that sends IMAGE (SIZE.BYTES bytes of a known pattern, format ".bin") with
send_blob(timeout=SIZE.TIMEOUT) and then appends "returned True" (or False) to ORDER.EVENTS.
PROBE is answered at once, so a test can tell that the driver is serving while send_blob waits.
"""
import random

from indi.driver import (
    BLOB,
    OK,
    BLOBVector,
    Device,
    Number,
    NumberVector,
    Switch,
    SwitchVector,
    Text,
    TextVector,
    handles,
    run,
)


def pattern(size):
    """The bytes sent: pseudo-random, so that a lost, doubled or moved piece cannot go unnoticed."""
    return random.Random(size).randbytes(size)


class BlobDevice(Device):
    default_name = "BLOB Test"

    def init_properties(self):
        self.image = self.add(BLOBVector("IMAGE", "Image", perm="ro", members=[BLOB("DATA", "Data")]))
        self.size = self.add(NumberVector("SIZE", "Size", members=[
            Number("BYTES", "Bytes", "%.f", 0, 1e8, 1, 100000), Number("TIMEOUT", "Timeout (s)", "%g", 0, 600, 0, 60)]))
        self.order = self.add(TextVector("ORDER", "Order", perm="ro", members=[Text("EVENTS", "Events", "")]))
        self.add(SwitchVector("SEND", "Send", rule="AtMostOne", members=[Switch("GO")]))
        self.add(SwitchVector("PROBE", "Probe", rule="AtMostOne", members=[Switch("PING")]))

    @handles("SEND")
    def send(self, vector, values):
        vector.send(state=OK)
        self.start(self.send_image(), connected=False)

    async def send_image(self):
        blob = self.image["DATA"]
        blob.value, blob.format = pattern(int(self.size.value("BYTES"))), ".bin"
        answered = await self.send_blob(self.image, timeout=self.size.value("TIMEOUT"))
        events = (self.order.value("EVENTS") + f" returned {answered}").strip()
        self.order.send(state=OK, EVENTS=events)

    @handles("PROBE")
    def probe(self, vector, values):
        vector.send(state=OK)


if __name__ == "__main__":
    run(BlobDevice)
