"""Fakes for testing code that uses tjf_core, shipped with it (like ``structlog.testing``).

:class:`InMemoryRuntime` implements :class:`~tjf_core.runtime.Runtime` in memory, behaving
like the Kubernetes API wherever the service can tell: objects get a uid, a resourceVersion
that changes on every write and a creation time from an injected clock; a taken name is a 409
(``AlreadyExistsError``); a Job's pod template cannot change in place (``replace`` deletes and
re-creates it, as the real runtime must); count quotas (``count/jobs.batch``,
``count/cronjobs.batch``, ``count/deployments.apps``, ``services``) refuse a create with the
apiserver's own text, said through :func:`~tjf_core.quota.quota_exceeded_message`; deleting a
job selects its objects by label and garbage-collects what they owned. Errors and listings are
worded and shaped as :mod:`tjf_core.kube` gives them (list items with their ``kind``).

A cluster's controllers and kubelet act on their own; here a driver
(:meth:`InMemoryRuntime.driver`, an :class:`InMemoryDriver`) does their part on request: it
makes the pods a Job or Deployment would have by now and moves them through their phases, so
status, restarts and logs are testable without a cluster. :class:`FakeClock` is a settable
clock to share between the runtime and the service; :class:`CountingRuntime` counts the calls
made on any runtime ("listing is one call"). There is no global state: instances are
independent, and each is thread-safe.

Example::

    clock = FakeClock()
    runtime = InMemoryRuntime(clock=clock)
    service = JobService(runtime, clock=clock)
    tool = service.identity("mytool")
    service.run(tool, JobSpec(name="hello", command="echo hi", image="bookworm"))
    driver = runtime.driver(tool)
    [pod] = driver.pods_of("hello")
    driver.set_succeeded(pod)
    assert service.get(tool, "hello").status.status_short == "Completed"

The objects live in the store of :mod:`tjf_core.testing._store`; the runtime
(``_runtime``) is what clients may do with them, the driver (``_driver``) what the cluster
does.
"""

from __future__ import annotations

from tjf_core.testing._driver import InMemoryDriver
from tjf_core.testing._runtime import CountingRuntime, FakeClock, InMemoryRuntime, bundled_catalog

__all__ = ["CountingRuntime", "FakeClock", "InMemoryDriver", "InMemoryRuntime", "bundled_catalog"]
