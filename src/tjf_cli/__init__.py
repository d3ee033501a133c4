"""tjf_cli: the ``toolforge-jobs`` command line client, a thin click adapter over the API SDK.

The commands (:mod:`tjf_cli.cli` and the modules it gathers) parse flags, call ONE operation of
a :class:`~tjf_cli.backend.Backend` (the jobs API through :mod:`tjf_http.client`, or, in direct
mode, :class:`~tjf_core.service.JobService` in this process) and print the answer. The entry
point is :func:`tjf_cli.__main__.main`.
"""

__all__: list[str] = []
