"""Devices as declarations, as libindi's DefaultDevice provides them.

A Device subclass declares its properties in ``init_properties`` (with ``connected=True`` for the
ones that exist only while connected), handles new values with methods marked ``@handles(NAME)``,
and overrides ``connect``/``disconnect``/``poll`` as needed. The base class provides CONNECTION,
DRIVER_INFO (with the interface bit mask), DEBUG, SIMULATION, CONFIG_PROCESS and POLLING_PERIOD,
validation of every new value (permission, switch rule, number range), configuration files,
messages at libindi's levels, timers owned by the device, snooping, and BLOBs that wait for the
server's pingReply before the next one.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import sys
import traceback
from collections.abc import Awaitable, Callable
from enum import IntFlag
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ..protocol import (
    BLOBMode,
    DefVector,
    DelProperty,
    Element,
    Message,
    NewVector,
    Permission,
    SetVector,
    SwitchRule,
    serialize,
    timestamp,
)
from ..protocol.elements import xml_attributes
from .config import ConfigError, config_path, read_config, write_config
from .properties import (
    ALERT,
    BUSY,
    IDLE,
    OK,
    ON,
    BLOBVector,
    Number,
    NumberVector,
    Rejected,
    Switch,
    SwitchVector,
    Text,
    TextVector,
    Vector,
)

if TYPE_CHECKING:
    from .runtime import Driver

__all__ = ["Device", "Interface", "handles"]


class Interface(IntFlag):
    """libindi's DRIVER_INTERFACE bits: what kind of device this is."""
    GENERAL = 0
    TELESCOPE = 1 << 0
    CCD = 1 << 1
    GUIDER = 1 << 2
    FOCUSER = 1 << 3
    FILTER = 1 << 4
    DOME = 1 << 5
    GPS = 1 << 6
    WEATHER = 1 << 7
    AO = 1 << 8
    DUSTCAP = 1 << 9
    LIGHTBOX = 1 << 10
    DETECTOR = 1 << 11
    ROTATOR = 1 << 12
    SPECTROGRAPH = 1 << 13
    CORRELATOR = 1 << 14
    AUX = 1 << 15


def handles(*names: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark a method as the handler of new values for these properties:
    ``async def method(self, vector, values)`` with values already checked and converted."""
    def mark(method: Callable[..., Any]) -> Callable[..., Any]:
        method._indi_handles = names  # type: ignore[attr-defined]
        return method
    return mark


SnoopCallback = Callable[[Element], Any]


class Device:
    """One INDI device. Subclasses set the class attributes and override the hooks."""

    default_name: ClassVar[str] = "Python Device"
    version: ClassVar[str] = "1.0"
    interface: ClassVar[Interface] = Interface.GENERAL
    connection_modes: ClassVar[tuple[str, ...]] = ()   # "serial" and/or "tcp": adds the connection properties
    has_simulation: ClassVar[bool] = False               # offer SIMULATION
    polling_ms: ClassVar[float] = 1000
    early_config: ClassVar[tuple[str, ...]] = ()         # saved properties applied before connecting

    _handlers: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        handlers: dict[str, str] = {}
        for klass in reversed(cls.__mro__):
            for attr, value in vars(klass).items():
                for name in getattr(value, "_indi_handles", ()):
                    handlers[name] = attr
        cls._handlers = handlers

    def __init__(self, driver: Driver | None = None, name: str | None = None) -> None:
        self.driver = driver
        self.name = name or self.default_name
        self.properties: dict[str, Vector] = {}
        self._connected_only: set[str] = set()
        self.defined: set[str] = set()
        self.connected = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._connected_tasks: set[asyncio.Task[Any]] = set()
        self._snoops: dict[tuple[str, str | None], list[SnoopCallback]] = {}
        self._standard_properties()
        self.init_properties()

    # ------------------------------------------------------------------------------ declaring
    def add(self, vector: Vector, *, connected: bool = False) -> Any:
        """Declare a property (defined to clients while connected, if ``connected``). Returns it."""
        if vector.name in self.properties:
            raise ValueError(f"{self.name}: property {vector.name} declared twice")
        vector.device = self
        self.properties[vector.name] = vector
        if connected:
            self._connected_only.add(vector.name)
        return vector

    def remove(self, name: str) -> None:
        """Withdraw a declared property (e.g. a standard one this device does not offer)."""
        self.properties.pop(name, None)
        self._connected_only.discard(name)

    def _standard_properties(self) -> None:
        exec_name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python"
        self.connection = self.add(SwitchVector("CONNECTION", "Connection", "Main Control", members=[
            Switch("CONNECT", "Connect"), Switch("DISCONNECT", "Disconnect", ON)]))
        # libindi shows driver information with the connection settings, or alone without any.
        info_group = "Connection" if self.connection_modes else "General Info"
        self.driver_info = self.add(TextVector("DRIVER_INFO", "Driver Info", info_group, Permission.RO, members=[
            Text("DRIVER_NAME", "Name", self.default_name), Text("DRIVER_EXEC", "Exec", exec_name),
            Text("DRIVER_VERSION", "Version", self.version),
            Text("DRIVER_INTERFACE", "Interface", str(int(self.interface)))]))
        self.debug_switch = self.add(SwitchVector("DEBUG", "Debug", "Options", timeout=0, members=[
            Switch("ENABLE", "Enable"), Switch("DISABLE", "Disable", ON)], save=True))
        if self.has_simulation:
            self.simulation_switch = self.add(SwitchVector("SIMULATION", "Simulation", "Options", timeout=0, members=[
                Switch("ENABLE", "Enable"), Switch("DISABLE", "Disable", ON)], save=True))
        self.polling = self.add(NumberVector("POLLING_PERIOD", "Polling", "Options", timeout=0, members=[
            Number("PERIOD_MS", "Period (ms)", "%.f", 10, 600000, 1000, self.polling_ms)], save=True))
        self.config_process = self.add(SwitchVector("CONFIG_PROCESS", "Configuration", "Options", timeout=0,
                                                    rule=SwitchRule.AT_MOST_ONE, members=[
            Switch("CONFIG_LOAD", "Load"), Switch("CONFIG_SAVE", "Save"), Switch("CONFIG_DEFAULT", "Default"),
            Switch("CONFIG_PURGE", "Purge")]))
        if self.connection_modes:
            modes = [Switch("CONNECTION_SERIAL", "Serial", "serial" == self.connection_modes[0])
                     if mode == "serial" else Switch("CONNECTION_TCP", "Network", "tcp" == self.connection_modes[0])
                     for mode in self.connection_modes]
            self.add(SwitchVector("CONNECTION_MODE", "Connection Mode", "Connection", members=modes, save=True))
        if "serial" in self.connection_modes:
            self.add(TextVector("DEVICE_PORT", "Ports", "Connection", members=[
                Text("PORT", "Port", "/dev/ttyUSB0")], save=True))
            self.add(SwitchVector("DEVICE_BAUD_RATE", "Baud Rate", "Connection", members=[
                Switch(rate, rate, rate == "9600") for rate in ("9600", "19200", "38400", "57600", "115200", "230400")],
                save=True))
            self.add(SwitchVector("DEVICE_AUTO_SEARCH", "Auto Search", "Connection", members=[
                Switch("INDI_ENABLED", "Enabled", ON), Switch("INDI_DISABLED", "Disabled")], save=True))
            self.add(SwitchVector("DEVICE_PORT_SCAN", "Refresh", "Connection", members=[
                Switch("Scan Ports", "Scan Ports")]))

    # ------------------------------------------------------------------- hooks for subclasses
    def init_properties(self) -> None:
        """Declare the device's own properties (self.add(...))."""

    async def connect(self) -> bool:
        """Connect to the hardware; True on success."""
        return True

    async def disconnect(self) -> None:
        """Release the hardware."""

    def visible(self, name: str) -> bool:
        """Whether a connected-only property is offered now (e.g. only while an option is on)."""
        return True

    def update_properties(self) -> None:
        """Called after connecting and disconnecting, and when visible() changes: defines or
        deletes the connected-only properties."""
        for name, vector in self.properties.items():
            if name in self._connected_only:
                if self.connected and self.visible(name):
                    self.define(vector)
                else:
                    self.delete(vector)

    async def poll(self) -> None:
        """Called every POLLING_PERIOD while connected, if a subclass overrides it."""

    async def after_connect(self) -> None:
        """Called once connected, after the saved configuration has been applied."""

    # ------------------------------------------------------------------------------- to clients
    def _write(self, element: Element) -> None:
        if self.driver is not None:
            self.driver.write(serialize(element))

    def define(self, vector: Vector) -> None:
        self.defined.add(vector.name)
        self._write(vector.definition())

    def delete(self, vector: Vector | None = None, message: str | None = None) -> None:
        """delProperty for one vector (if defined), or for the whole device."""
        if vector is None:
            self.defined.clear()
            self._write(DelProperty(self.name, None, timestamp(), message))
        elif vector.name in self.defined:
            self.defined.discard(vector.name)
            self._write(DelProperty(self.name, vector.name, timestamp(), message))

    def send_update(self, vector: Vector, message: str | None = None) -> None:
        """setXXXVector with the vector's current values (if the vector is defined)."""
        if vector.name in self.defined:
            self._write(vector.update_element(message))

    def get_properties(self, name: str | None = None) -> None:
        """Answer a getProperties: define what is visible now (everything, or just ``name``)."""
        if not self.defined:
            self.save_default_config()
            if self.early_config:
                self.start(self.load_config(silent=True, names=self.early_config), connected=False)
        for vector_name, vector in self.properties.items():
            if name and vector_name != name:
                continue
            if vector_name not in self._connected_only or (self.connected and self.visible(vector_name)):
                self.define(vector)

    async def send_blob(self, vector: BLOBVector, message: str | None = None, state: Any = OK,
                        timeout: float = 60.0) -> bool:
        """Send a BLOB vector, then wait (up to timeout) for the server to have read it, as libindi
        drivers do since 1.9.7: a driver never holds more than one frame for a slow server.
        Returns False if the server did not answer in time."""
        vector.state = state
        if vector.name not in self.defined or self.driver is None:
            return True
        self.driver.write_blob(vector, message)
        return await self.driver.ping(timeout)

    def message(self, text: str, level: str = "INFO") -> None:
        """A message to clients, as libindi's logger writes it: ``[LEVEL] text``."""
        if level == "DEBUG" and not self.debugging:
            return
        self._write(Message(f"[{level}] {text}", self.name, timestamp()))

    def info(self, text: str) -> None:
        self.message(text, "INFO")

    def warning(self, text: str) -> None:
        self.message(text, "WARNING")

    def error(self, text: str) -> None:
        self.message(text, "ERROR")

    def debug(self, text: str) -> None:
        self.message(text, "DEBUG")

    @property
    def debugging(self) -> bool:
        return self.debug_switch.is_on("ENABLE")

    @property
    def simulating(self) -> bool:
        return self.has_simulation and self.simulation_switch.is_on("ENABLE")

    # ---------------------------------------------------------------------------- from clients
    async def handle_new(self, vector: Vector, values: dict[str, Any]) -> None:
        """New values from a client: check them, then run the property's handler (or accept them)."""
        try:
            checked = vector.check(values)
        except Rejected as exc:
            if exc.state is None:  # nothing to change (read-only): just say why
                self.warning(str(exc))
            else:
                vector.state = exc.state
                self.send_update(vector, f"Error: {exc}")
            return
        vector.requested = values  # what the client sent, for handlers that care (switch rules)
        handler = self._handlers.get(vector.name)
        try:
            if handler is None:
                vector.apply(checked)
                vector.state = OK
                self.send_update(vector)
            else:
                result = getattr(self, handler)(vector, checked)
                if inspect.isawaitable(result):
                    await result
        except Exception as exc:  # a bug in one handler must not take the driver down
            traceback.print_exc()
            vector.state = ALERT
            self.send_update(vector, f"Error: {type(exc).__name__}: {exc}")

    @handles("CONNECTION")
    async def _on_connection(self, vector: SwitchVector, values: dict[str, Any]) -> None:
        want = values["CONNECT"] is ON
        if want == self.connected:
            vector.select("CONNECT" if want else "DISCONNECT")
            vector.send(state=OK if want else IDLE)
            return
        if want:
            vector.send(state=BUSY)
            try:
                ok = await self.connect()
            except Exception as exc:
                traceback.print_exc()
                self.error(f"cannot connect: {exc}")
                ok = False
            if not ok:
                vector.select("DISCONNECT")
                vector.send(state=ALERT)
                return
            self.connected = True
            vector.select("CONNECT")
            vector.send(state=OK)
            self.info(f"{self.name} is online.")
            self.update_properties()
            await self.load_config(silent=True)
            if type(self).poll is not Device.poll:
                self.every(lambda: self.polling.value("PERIOD_MS") / 1000.0, self.poll)
            await self.after_connect()
        else:
            self._cancel(self._connected_tasks)
            try:
                await self.disconnect()
            except Exception:
                traceback.print_exc()
            self.connected = False
            vector.select("DISCONNECT")
            vector.send(state=IDLE)
            self.info(f"{self.name} is offline.")
            self.update_properties()

    @handles("CONFIG_PROCESS")
    async def _on_config(self, vector: SwitchVector, values: dict[str, Any]) -> None:
        action = next((name for name, value in values.items() if value is ON), None)
        vector.select(None)
        if action == "CONFIG_LOAD":
            ok = await self.load_config()
        elif action == "CONFIG_DEFAULT":
            ok = await self.load_config(default=True)
        elif action == "CONFIG_SAVE":
            ok = self.save_config()
        elif action == "CONFIG_PURGE":
            ok = self.purge_config()
        else:
            ok = True
        vector.send(state=OK if ok else ALERT)

    # --------------------------------------------------------------------------- configuration
    @property
    def config_file(self) -> Path:
        return config_path(self.name)

    def _config_vectors(self) -> list[NewVector]:
        out = []
        for vector in self.properties.values():
            if vector.save and vector.perm is not Permission.RO:
                element = vector.update_element()
                out.append(NewVector(vector.type, self.name, vector.name, element.members))
        return out

    def save_config(self, path: Path | None = None, names: tuple[str, ...] | None = None) -> bool:
        """Write the saved properties; with ``names``, update just those in the existing file."""
        vectors = self._config_vectors()
        try:
            if names is not None:
                kept = [v for v in read_config(path or self.config_file) if v.name not in names]
                vectors = kept + [v for v in vectors if v.name in names]
            write_config(path or self.config_file, vectors)
        except ConfigError as exc:
            self.error(f"Error saving configuration: {exc}")
            return False
        if path is None and names is None:
            self.info(f"Saving device configuration to {self.config_file}")
        return True

    def save_default_config(self) -> None:
        """Keep the values the device starts with as <config>.default, for CONFIG_DEFAULT (once)."""
        default = self.config_file.with_name(self.config_file.name + ".default")
        if not default.exists():
            try:
                write_config(default, self._config_vectors())
            except ConfigError:
                pass  # only CONFIG_DEFAULT needs it, and it says so if it is missing

    async def load_config(self, default: bool = False, silent: bool = False,
                          names: tuple[str, ...] | None = None) -> bool:
        """Apply a saved configuration as if a client had sent it (after connecting, and CONFIG_LOAD)."""
        path = self.config_file
        if default:
            path = path.with_name(path.name + ".default")
        if not path.exists():
            if not silent:
                self.error(f"No configuration file found at {path}")
            return silent
        try:
            saved = read_config(path)
        except ConfigError as exc:
            self.error(f"Error loading configuration: {exc}")
            return False
        for element in saved:
            vector = self.properties.get(element.name)
            if element.device != self.name or vector is None or not vector.save or element.type is not vector.type:
                continue  # another device's, gone, not a setting, or of another type: libindi ignores it too
            if names is not None and element.name not in names:
                continue
            values = {m.name: m.value for m in element.members if m.name in vector}
            if values:
                await self.handle_new(vector, values)
        if not silent:
            self.info(f"Loading device configuration from {path}")
        return True

    def purge_config(self) -> bool:
        try:
            self.config_file.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            self.error(f"Error purging configuration: {exc.strerror}")
            return False
        self.info("Configuration file purged.")
        return True

    # ---------------------------------------------------------------------------------- timers
    def start(self, coro: Awaitable[Any], *, connected: bool = True) -> asyncio.Task[Any]:
        """Run a coroutine owned by the device: cancelled on disconnect when ``connected``."""
        owner = self._connected_tasks if connected else self._tasks
        task = asyncio.get_running_loop().create_task(self._guard(coro))
        owner.add(task)
        task.add_done_callback(owner.discard)
        return task

    async def _guard(self, coro: Awaitable[Any]) -> Any:
        try:
            return await coro
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            traceback.print_exc()
            self.error(f"internal error: {type(exc).__name__}: {exc}")

    def every(self, seconds: float | Callable[[], float], func: Callable[[], Any], *,
              connected: bool = True) -> asyncio.Task[Any]:
        """Call func (plain or async) periodically; ``seconds`` may be a callable read each time."""
        async def loop() -> None:
            while True:
                await asyncio.sleep(seconds() if callable(seconds) else seconds)
                await self._guard(self._call(func))  # one failure must not end the timer
        return self.start(loop(), connected=connected)

    @staticmethod
    async def _call(func: Callable[[], Any]) -> Any:
        result = func()
        if inspect.isawaitable(result):
            result = await result
        return result

    def after(self, seconds: float, func: Callable[[], Any], *, connected: bool = True) -> asyncio.Task[Any]:
        """Call func (plain or async) once, after a delay."""
        async def later() -> None:
            await asyncio.sleep(seconds)
            result = func()
            if inspect.isawaitable(result):
                await result
        return self.start(later(), connected=connected)

    @staticmethod
    def _cancel(tasks: set[asyncio.Task[Any]]) -> None:
        for task in list(tasks):
            task.cancel()

    def shutdown(self) -> None:
        self._cancel(self._connected_tasks)
        self._cancel(self._tasks)

    # -------------------------------------------------------------------------------- snooping
    def snoop(self, device: str, name: str | None, callback: SnoopCallback) -> None:
        """Receive another device's definitions and updates of property ``name`` (all if None):
        callback(element) for each DefVector, SetVector or DelProperty. Calling it again with the
        same callback only asks for the definitions again."""
        if not device:
            return
        callbacks = self._snoops.setdefault((device, name), [])
        if callback not in callbacks:
            callbacks.append(callback)
        if self.driver is not None:
            pairs: list[tuple[str, object]] = [("version", "1.7"), ("device", device), ("name", name)]
            self.driver.write(f"<getProperties{xml_attributes(pairs)}/>\n".encode())

    def stop_snooping(self, device: str, name: str | None = None) -> None:
        self._snoops.pop((device, name), None)

    def snoop_blobs(self, device: str, name: str | None = None, mode: BLOBMode = BLOBMode.ALSO) -> None:
        if self.driver is not None:
            self.driver.write(f"<enableBLOB{xml_attributes([('device', device), ('name', name)])}>{mode}"
                              f"</enableBLOB>\n".encode())

    def snooped(self, element: DefVector | SetVector | DelProperty) -> None:
        """Hand a message from another device to this device's snoop callbacks."""
        device = element.device
        if element.name:
            callbacks = self._snoops.get((device, None), []) + self._snoops.get((device, element.name), [])
        else:  # the whole device is gone
            callbacks = [cb for (dev, _), cbs in self._snoops.items() if dev == device for cb in cbs]
        for callback in callbacks:
            try:
                result = callback(element)
                if inspect.isawaitable(result):
                    self.start(result, connected=False)
            except Exception:
                traceback.print_exc()

    def snoops(self, device: str) -> bool:
        return any(dev == device for dev, _ in self._snoops)
