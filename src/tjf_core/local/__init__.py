"""The local edge of tjf: jobs run as processes on one machine, without a cluster.

:class:`LocalRuntime` implements :class:`tjf_core.runtime.Runtime` and passes the same
contract as the Kubernetes and in-memory runtimes. It is the embedded default when no cluster
is configured. Objects keep their Kubernetes shape (Jobs, CronJobs, Deployments, pods,
events), so status, readback and the emailer's pipeline read them unchanged; what the cluster
would do, the runtime does itself:

* a pod is a process ``/bin/sh -c CMD`` in the tool's home (``root/<tool>``), in its own
  session (process group), with the container's environment (``HOME``, ``HOSTNAME`` = the pod
  name, ``TOOL_NAME``, ``TOOL_DATA_DIR``, ``PATH``, and ``PORT`` for a job with a port);
  stdout and stderr go to the job's log files (opened by the runtime, only inside the home) or,
  with filelog off, to a per-pod log under the state directory, read by ``pod_logs``;
* Jobs retry failed attempts with back-off up to ``retry``, ``timeout`` stops the whole
  process group (SIGTERM, SIGKILL after the grace period) and fails the Job; finished Jobs go
  after ``ttlSecondsAfterFinished`` as on the cluster;
* CronJobs fire at their cron times in their time zone, with their concurrency policy;
  ``restart`` runs one now;
* Deployments keep ``replicas`` processes, restarted with the kubelet's doubling back-off (a
  crash loop shows as ``CrashLoopBackOff`` with ``restartCount`` and ``lastState``), health
  checks (script, http, tcp) restart an unhealthy one, a rolling restart replaces them;
* quotas: a ResourceQuota and LimitRange per tool (Toolforge's by default), enforced as the
  apiserver does: object counts at create, pods (count, cpu and memory requests and limits)
  when a controller makes one.

What is NOT a container (see ``docs/local.md``): the command runs on the host, as the user
running the runtime (or the tool's unix user, ``LocalSettings.run_as``), with the host's files
and network; the image is only a label (it must be
in the catalog, and is shown, but the host's programs run). The memory limit is the address
space limit (RLIMIT_AS), which counts virtual memory: programs that reserve much more than
they use (the JVM, Go) need a higher limit than on Kubernetes. CPU is not limited. A process
that leaves its process group (``setsid``) escapes stopping. A port is the host's, shared by
replicas.

Restarts: :meth:`LocalRuntime.close` stops every process; a new runtime on the same state
directory stops whatever a runtime that died left running (known by pid and start time, so a
reused pid is never hit), then carries on: continuous jobs get new pods, scheduled jobs fire
at their next times, an interrupted Job attempt counts as failed (``Terminated``) and is
retried if its ``retry`` allows. One runtime at a time may use a state directory.

Threads: the supervisor (every process start and reap, timers, schedules, controllers) and the
health checker (probes). Subscribers (:meth:`LocalRuntime.subscribe`) get a copy of each pod
whose status changed, as a watch would send it to the emailer.
"""

from __future__ import annotations

from tjf_core.local.runtime import LocalRuntime
from tjf_core.local.settings import DEFAULT_LIMIT_RANGE, DEFAULT_QUOTA, LocalSettings
from tjf_core.local.store import Run

__all__ = ["DEFAULT_LIMIT_RANGE", "DEFAULT_QUOTA", "LocalRuntime", "LocalSettings", "Run"]
