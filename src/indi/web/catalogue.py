"""The driver catalogue: what can be put in a profile, with the objects indiwebmanager's API returns.

Three sources, merged by label, the first of a label winning:

1. the XML files INDI packages install (``/usr/share/indi/*.xml``, skeletons ``*_sk*`` excepted);
2. this package's own Python drivers, so that a machine with no INDI package still offers the
   simulators (with the labels and groups of ``drivers.xml``, whose entries they duplicate);
3. the custom drivers of the ``custom`` table, appended last as indiwebmanager does.

A malformed file is skipped with a logged error: one broken package must not hide the others.
"""

from __future__ import annotations

import logging
import os
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from typing import Any

from .. import __version__

__all__ = ["DeviceDriver", "Catalogue", "PYTHON_DRIVERS", "remote_driver"]

log = logging.getLogger("indi.web")


@dataclass
class DeviceDriver:
    """One driver as indiwebmanager describes it; ``to_json()`` has exactly its keys, in its order."""
    name: str
    label: str
    version: str
    binary: str
    family: str
    skeleton: str | None = None
    mdpd: bool = False          # several devices from one driver: started without -n
    custom: bool = False
    rule: dict[str, Any] | None = None  # the profile's script rule for it, while it runs
    role: str = ""
    source: str = field(default="", compare=False)  # where it came from (not part of the API)

    @property
    def remote(self) -> bool:
        return "@" in self.binary

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        return {key: data[key] for key in ("name", "label", "skeleton", "version", "binary", "family", "mdpd",
                                           "custom", "rule", "role")}


def remote_driver(spec: str) -> DeviceDriver:
    """A remote driver ``device@host:port``, described as indiwebmanager describes one."""
    return DeviceDriver(spec, spec, "1.0", spec, "Remote", source="remote")


# (label, family, executable, mdpd): this package's drivers, as /usr/share/indi/drivers.xml lists them.
PYTHON_DRIVERS: tuple[tuple[str, str, str, bool], ...] = (
    ("Telescope Simulator", "Telescopes", "indi_simulator_telescope", False),
    ("CCD Simulator", "CCDs", "indi_simulator_ccd", True),
    ("Guide Simulator", "CCDs", "indi_simulator_guide", True),
    ("Focuser Simulator", "Focusers", "indi_simulator_focus", False),
    ("Filter Simulator", "Filter Wheels", "indi_simulator_wheel", False),
    ("Dome Simulator", "Domes", "indi_simulator_dome", False),
    ("GPS Simulator", "Auxiliary", "indi_simulator_gps", False),
    ("Weather Simulator", "Weather", "indi_simulator_weather", False),
)


def parse_catalogue_file(path: str, xml_dir: str) -> list[DeviceDriver]:
    """The drivers of one catalogue file; ET.ParseError if it is not XML. Malformed entries are
    skipped with a logged error, the rest of the file is kept."""
    root = ET.parse(path).getroot()
    drivers = []
    for group in root.iter("devGroup"):
        family = group.get("group")
        if not family:
            log.error("driver catalogue %s: a devGroup without a group attribute: skipped", path)
            continue
        for device in group.findall("device"):
            label = device.get("label")
            driver = device.find("driver")
            binary = (driver.text or "").strip() if driver is not None else ""
            if not label or driver is None or not binary:
                log.error("driver catalogue %s: device %r has no label or no driver executable: skipped",
                          path, label)
                continue
            skel = device.get("skel")
            drivers.append(DeviceDriver(
                name=driver.get("name") or label, label=label,
                version=(device.findtext("version") or "0.0").strip(), binary=binary, family=family,
                skeleton=os.path.join(xml_dir, skel) if skel else None,
                mdpd=device.get("mdpd", "").strip().lower() == "true", source=path))
    return drivers


class Catalogue:
    def __init__(self, xml_dir: str | None, custom: list[dict[str, Any]] | None = None,
                 python_drivers: bool = True) -> None:
        self.xml_dir = xml_dir
        self.errors: list[str] = []      # one line per file that could not be read, for the status page
        self.drivers: list[DeviceDriver] = []
        self._base = self._load(python_drivers)
        self.set_custom(custom or [])

    def _load(self, python_drivers: bool) -> list[DeviceDriver]:
        found: list[DeviceDriver] = []
        if self.xml_dir and os.path.isdir(self.xml_dir):
            try:
                names = sorted(os.listdir(self.xml_dir))
            except OSError as exc:
                names = []
                self._error(f"cannot list driver catalogue directory {self.xml_dir}: {exc.strerror}")
            for name in names:
                if not name.endswith(".xml") or "_sk" in name:
                    continue
                path = os.path.join(self.xml_dir, name)
                try:
                    found += parse_catalogue_file(path, self.xml_dir)
                except ET.ParseError as exc:
                    self._error(f"driver catalogue {path} is not valid XML ({exc}): skipped")
                except OSError as exc:
                    self._error(f"cannot read driver catalogue {path}: {exc.strerror}: skipped")
        elif self.xml_dir:
            log.info("no driver catalogue directory %s: offering this package's drivers only", self.xml_dir)
        if python_drivers:
            for label, family, binary, mdpd in PYTHON_DRIVERS:
                found.append(DeviceDriver(label, label, __version__, binary, family, mdpd=mdpd, source="indi-python"))
        seen: set[str] = set()
        merged = []
        for driver in found:
            if driver.label not in seen:
                seen.add(driver.label)
                merged.append(driver)
        merged.sort(key=lambda d: d.label)
        return merged

    def _error(self, message: str) -> None:
        log.error(message)
        self.errors.append(message)

    def set_custom(self, rows: list[dict[str, Any]]) -> None:
        """Replace the custom drivers with the rows of the ``custom`` table."""
        custom = [DeviceDriver(row.get("name") or row["label"], row["label"], row.get("version") or "1.0",
                               row.get("exec") or "", row.get("family") or "Custom", custom=True, source="custom")
                  for row in rows if row.get("label")]
        self.drivers = self._base + custom

    def by_label(self, label: str) -> DeviceDriver | None:
        """The driver with this label, else the first whose label starts the given string: KStars asks
        for a device name ("ZWO CCD ASI120MM") to find its driver ("ZWO CCD")."""
        for driver in self.drivers:
            if driver.label == label:
                return driver
        for driver in self.drivers:
            if driver.label and label.startswith(driver.label):
                return driver
        return None

    def by_binary(self, binary: str) -> DeviceDriver | None:
        for driver in self.drivers:
            if driver.binary == binary:
                return driver
        return None

    def families(self) -> dict[str, list[str]]:
        result: dict[str, list[str]] = {}
        for driver in self.drivers:
            result.setdefault(driver.family, []).append(driver.label)
        return result
