#!/usr/bin/env python3
"""Point the telescope at M42 and save a 2-second exposure of the CCD as m42.fits.

Run it against this project's indiserver with the telescope and CCD simulators, which connects
the devices by itself (`indiserver indi_simulator_telescope indi_simulator_ccd`; with another
server, connect them first: indi.connect_device(name)). The port is 7624 unless given:
`python examples/expose.py [PORT]`.
"""
import sys

from indi.client import BlockingClient

with BlockingClient("localhost", int(sys.argv[1]) if len(sys.argv) > 1 else 7624) as indi:
    indi.set("Telescope Simulator", "EQUATORIAL_EOD_COORD", RA="5:35:17", DEC="-5:23:28", wait=True)
    with indi.receive_blob("CCD Simulator", "CCD1", to_file="m42.fits") as image:
        indi.set("CCD Simulator", "CCD_EXPOSURE", CCD_EXPOSURE_VALUE=2)
    print("saved", image.wait(timeout=60).path)
