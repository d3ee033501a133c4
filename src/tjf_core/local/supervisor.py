"""The supervisor thread: reaps exits, runs timers, fires schedules and reconciles, in rounds.

One thread does everything that starts or reaps a process, so no two threads ever race on a
pid. A round (under the store's lock) reaps the processes that exited, sends SIGKILL to those
past their grace period, restarts those past their back-off, fires due CronJobs, reconciles
Jobs and Deployments, and commits. Between rounds it sleeps until the earliest of: a process
exits (its pidfd becomes readable), someone calls :meth:`Supervisor.wake` (an object was
created, changed or deleted), the next timer or fire time, or ``LocalSettings.tick``.

Subscribers are called after the round, outside the lock, so a callback may call the runtime.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
from collections.abc import Callable

from tjf_core.local.controllers import Controllers
from tjf_core.local.kubelet import Kubelet
from tjf_core.local.scheduler import Scheduler
from tjf_core.local.settings import LocalSettings
from tjf_core.local.store import LocalStore

__all__ = ["Supervisor"]

log = logging.getLogger(__name__)

#: Never sleep less than this between rounds: a timer that stays due must not spin a core.
_MIN_WAIT = 0.005


class Supervisor:
    """Runs rounds in a thread of its own, from :meth:`start` until :meth:`stop`."""

    def __init__(self, *, store: LocalStore, kubelet: Kubelet, controllers: Controllers,
                 scheduler: Scheduler, settings: LocalSettings,
                 deliver: Callable[[], None]) -> None:
        self.store = store
        self.kubelet = kubelet
        self.controllers = controllers
        self.scheduler = scheduler
        self.settings = settings
        self.deliver = deliver
        self._read, self._write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        #: Guards the pipe: a wake after stop must not write to a closed (or reused) fd.
        self._pipe = threading.Lock()
        self._stopping = False
        self._thread: threading.Thread | None = None
        #: Rounds run so far (tests and benchmarks read it).
        self.rounds = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="tjf-local-supervisor",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop after the current round; the processes are left as they are."""
        self._stopping = True
        self.wake()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._pipe:
            os.close(self._read)
            os.close(self._write)
            self._read = self._write = -1

    def wake(self) -> None:
        """Run a round now (something changed)."""
        with self._pipe, contextlib.suppress(BlockingIOError, OSError):
            if self._write >= 0:
                os.write(self._write, b"!")

    def round(self) -> float | None:
        """One round; returns when the next timer is due (wall-clock seconds) or None."""
        self.rounds += 1
        self.kubelet.reap_exited()
        now = self.store.clock()
        due = [self.kubelet.timers(now.timestamp()), self.scheduler.reconcile(now),
               self.controllers.reconcile(now)]
        self.store.commit()
        return min((when for when in due if when is not None), default=None)

    def _loop(self) -> None:
        while not self._stopping:
            try:
                with self.store.lock:
                    due = self.round()
                    fds = self.kubelet.pidfds()
                self.deliver()
            except Exception:  # one bad round must not end supervision
                log.exception("local runtime: a supervisor round failed")
                due, fds = None, []
            wait = self.settings.tick
            if due is not None:
                wait = min(max(due - self.store.clock().timestamp(), _MIN_WAIT), wait)
            self._sleep(fds, wait)

    def _sleep(self, fds: list[int], seconds: float) -> None:
        poller = select.poll()
        poller.register(self._read, select.POLLIN)
        for fd in fds:
            poller.register(fd, select.POLLIN)
        poller.poll(seconds * 1000)
        with contextlib.suppress(BlockingIOError):
            while os.read(self._read, 4096):
                pass
