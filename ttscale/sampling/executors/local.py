"""The local executor: one backend in this process (ttscale's behaviour without a cluster)."""

from __future__ import annotations

from typing import Any


def local_backend(settings: Any) -> Any:
    """The backend named by the settings, built in this process with their backend options."""
    from ttscale.sampling.backends import get_backend

    return get_backend(settings.backend, model=settings.model, **settings.backend_options)
