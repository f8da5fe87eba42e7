"""What indi-web is told on its command line, with the defaults an indiwebmanager user expects."""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, field

__all__ = ["WebConfig", "WEB_PORT", "INDI_PORT", "default_conf_dir", "default_xml_dir", "our_bin_dir",
           "default_server"]

WEB_PORT = 8624
INDI_PORT = 7624
SYSTEM_XML_DIR = "/usr/share/indi"


def default_conf_dir() -> str:
    """~/.indi, where indiwebmanager keeps profiles.db (and drivers their configurations)."""
    home = os.environ.get("HOME")
    return os.path.join(home, ".indi") if home else "/tmp/indi"


def default_xml_dir() -> str:
    """$INDI_DATA_DIR, else /usr/share/indi: where INDI packages install their driver catalogues."""
    return os.environ.get("INDI_DATA_DIR") or SYSTEM_XML_DIR


def our_bin_dir() -> str:
    """Where this package's executables (indiserver, the Python simulators) were installed."""
    return os.path.dirname(os.path.abspath(sys.executable))


def default_server() -> str:
    """Our indiserver, next to the Python that runs indi-web (never Debian's of the same name)."""
    return shutil.which("indiserver", path=our_bin_dir()) or os.path.join(our_bin_dir(), "indiserver")


@dataclass
class WebConfig:
    host: str = "0.0.0.0"
    port: int = WEB_PORT
    conf_dir: str = field(default_factory=default_conf_dir)
    xml_dir: str = field(default_factory=default_xml_dir)
    indi_port: int = INDI_PORT              # port given to new profiles
    fifo: str | None = None                 # None: a FIFO in a private runtime directory
    server: str = field(default_factory=default_server)
    # Directories the indiserver searches before PATH (-l): ours first, so that our Python simulators
    # run rather than Debian's C++ programs of the same names.
    driver_dirs: list[str] = field(default_factory=lambda: [our_bin_dir()])
    allow_reboot: bool = False
    reboot_command: list[str] = field(default_factory=lambda: ["systemctl", "reboot"])
    poweroff_command: list[str] = field(default_factory=lambda: ["systemctl", "poweroff"])
    script_timeout: float = 30.0            # seconds a profile's pre/post script may run
    memory_mb: int = 1000                   # indiserver -m, as indiwebmanager passes
    server_options: list[str] = field(default_factory=list)  # more indiserver options (--server-options)
    verbose: bool = False
    autostart: bool = True                  # start the autostart profile when indi-web starts
    start_profile: str | None = None        # start this profile when indi-web starts (--start)
    logfile: str | None = None
    password: bool = False                  # require the password set with --set-password (see auth)

    @property
    def db_path(self) -> str:
        return os.path.join(self.conf_dir, "profiles.db")
