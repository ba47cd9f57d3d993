"""Serve: a local web page and HTTP API that protect images (``latentguard serve``, extra ``latentguard[web]``).

* :mod:`latentguard.serve.config`: the server's options (:class:`ServeConfig`) and defaults;
* :mod:`latentguard.serve.limits`: upload limits, content sniffing, parameter parsing (4xx, never 500);
* :mod:`latentguard.serve.jobs`: the bounded job queue, the fixed worker pool that owns the models, TTL cleanup;
* :mod:`latentguard.serve.app`: the FastAPI application (page, ``/v1/protect``, ``/v1/jobs/{id}``, ...);
* :mod:`latentguard.serve.cli`: ``latentguard serve``.

This package imports FastAPI only in :mod:`~latentguard.serve.app`; the others need only the core install.
See docs/serve.md.
"""

from latentguard.serve.config import ServeConfig, default_editor

__all__ = ["ServeConfig", "default_editor"]
