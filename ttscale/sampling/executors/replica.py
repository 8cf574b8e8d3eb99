"""What runs on a Ray worker for sampling (:class:`Replica`: one backend in one actor), and the
chunks it is fed (:func:`split_requests`, from :func:`ttscale.sampling.planner.iter_chunks`:
planned requests cut at sample boundaries, seeds kept).

Kept apart from :mod:`ttscale.sampling.executors.ray_sampling` (the driver's side) so that each
stays short.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable
from typing import Any

from ttscale.sampling.backends.base import Request, Sample
from ttscale.sampling.planner import iter_chunks


def split_requests(requests: Iterable[Request], size: int) -> list[list[Request]]:
    """:func:`iter_chunks` as a list."""
    return list(iter_chunks(requests, size))


def actor_lost_errors(ray: Any) -> tuple[type[BaseException], ...]:
    """Ray's exceptions for work lost with its actor or node (not raised by the code itself)."""
    names = ("RayActorError", "WorkerCrashedError", "ObjectLostError", "OutOfMemoryError",
             "NodeDiedError", "ActorUnavailableError", "OwnerDiedError")
    return tuple(getattr(ray.exceptions, n) for n in names if hasattr(ray.exceptions, n))


def first_line(e: BaseException) -> str:
    text = str(e).strip()
    return (text.splitlines()[0] if text else type(e).__name__)[:160]


class Replica:
    """One backend in one Ray actor (the class is wrapped with ``ray.remote`` by RayBackend)."""

    def __init__(self, backend: str, model: str, options: dict[str, Any]):
        self.spec = (backend, model, dict(options))
        self.backend: Any = None

    def _ensure(self) -> Any:
        if self.backend is None:
            from ttscale.sampling.backends import get_backend

            name, model, options = self.spec
            self.backend = get_backend(name, model=model, **options)
        return self.backend

    def start(self) -> dict[str, Any]:
        """Load the backend; its info, this node and ttscale's version (to check the cluster)."""
        import platform

        from ttscale import __version__

        info = dataclasses.asdict(self._ensure().info())
        return {"info": info, "node": platform.node(), "ttscale": __version__}

    def validate(self, requests: list[Request]) -> None:
        check = getattr(self._ensure(), "validate", None)
        if callable(check):
            check(requests)

    def generate(self, requests: list[Request]) -> tuple[list[Sample], float, float]:
        """All samples of ``requests``, and the wall and CPU seconds they took here."""
        t0, c0 = time.perf_counter(), time.process_time()
        out = [s for batch in self._ensure().generate(requests) for s in batch]
        return out, time.perf_counter() - t0, time.process_time() - c0

    def close(self) -> None:
        if self.backend is not None:
            self.backend.close()
