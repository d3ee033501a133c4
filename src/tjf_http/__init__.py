"""tjf_http: the REST API server over ``tjf_core.JobService`` and its Python client SDK.

A thin aiohttp adapter: it authenticates the caller, parses the request, calls one core
operation and renders the result. It holds no logic about jobs.
"""
