"""tjf_http: the REST API server over ``tjf_core.JobService`` (and, later, its client SDK).

A thin aiohttp adapter: it authenticates the caller, parses the request, calls one core
operation and renders the result. It holds no logic about jobs. Where things are:

* ``routes``: the route table (every route, as data: operation, flavour, bodies, answers);
* ``operations``: the operations shared by the modern and the legacy routes;
* ``modern`` / ``legacy``: the two flavours (which tool, how a job is spelled, JSON shapes);
* ``bodies``: reading JSON, form and YAML bodies and query parameters;
* ``auth``: listeners and identity (client certificate, or a trusted proxy's header);
* ``middleware``: request ids, access log, metrics, the one error mapping, authentication;
* ``executor``: the bounded thread pools, timeouts and log streams;
* ``app``: ``make_app(service, settings)``; ``server``: listeners, TLS, graceful stop;
* ``settings``/``config``: settings classes and loading them; ``runtimes``: which runtime;
* ``__main__``: ``tjf-api``.
"""
