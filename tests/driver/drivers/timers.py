#!/usr/bin/env python3
"""Timers owned by a device, observed through properties.

HEARTBEAT counts an every() task that runs whether connected or not; TICKS counts one that runs
only while connected; LATER is set by an after() started on connect, ARMED by an after() that
ARM schedules; POLLS counts poll() calls and reports the interval between the last two, measured
here in the driver; POLL_BOOM makes the next poll() raise. TASK_BOOM starts a task that raises.
"""
import time

from indi.driver import OK, Device, Number, NumberVector, Switch, SwitchVector, handles, run

PERIOD = 0.05


def counter(name, *members):
    return NumberVector(name, name.title(), members=[Number(m, m, "%.f", 0, 0, 0, 0) for m in members])


class TimerDevice(Device):
    default_name = "Timer Test"

    def init_properties(self):
        self.heartbeat = self.add(counter("HEARTBEAT", "COUNT"))
        self.ticks = self.add(counter("TICKS", "COUNT"))
        self.later = self.add(counter("LATER", "DONE"))
        self.armed = self.add(counter("ARMED", "DONE"))
        self.polls = self.add(counter("POLLS", "COUNT", "INTERVAL_MS"))
        self.add(SwitchVector("ARM", "Arm", rule="AtMostOne", members=[Switch("IN_HALF_A_SECOND")]))
        self.add(SwitchVector("POLL_BOOM", "Poll boom", rule="AtMostOne", members=[Switch("FIRE")]))
        self.add(SwitchVector("TASK_BOOM", "Task boom", rule="AtMostOne", members=[Switch("FIRE")]))
        self.last_poll = None
        self.poll_boom = False
        self.every(PERIOD, lambda: self.bump(self.heartbeat), connected=False)

    def bump(self, vector, member="COUNT"):
        vector.send(state=OK, **{member: vector.value(member) + 1})

    async def connect(self):
        self.every(PERIOD, lambda: self.bump(self.ticks))
        self.after(0.3, lambda: self.bump(self.later, "DONE"))
        return True

    async def poll(self):
        if self.poll_boom:
            self.poll_boom = False
            raise OSError("the poll exploded")
        now = time.monotonic()
        interval = (now - self.last_poll) * 1000 if self.last_poll is not None else 0
        self.last_poll = now
        self.polls.send(state=OK, COUNT=self.polls.value("COUNT") + 1, INTERVAL_MS=interval)

    @handles("ARM")
    def arm(self, vector, values):
        self.after(0.5, lambda: self.bump(self.armed, "DONE"))
        vector.send(state=OK)

    @handles("POLL_BOOM")
    def arm_poll_boom(self, vector, values):
        self.poll_boom = True
        vector.send(state=OK)

    @handles("TASK_BOOM")
    def task_boom(self, vector, values):
        async def explode():
            raise ValueError("the task exploded")
        self.start(explode())
        vector.send(state=OK)


if __name__ == "__main__":
    run(TimerDevice)
