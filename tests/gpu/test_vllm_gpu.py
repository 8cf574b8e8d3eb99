"""VLLMBackend on a CUDA GPU: the same seed contract as on CPU, plus the out-of-memory message.

Skipped unless torch sees a CUDA device and vLLM imports. Run: ``python -m pytest -q tests/gpu``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("needs a CUDA GPU", allow_module_level=True)
pytest.importorskip("vllm")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from test_vllm_backend import as_rows, make_requests, small_model_dir  # noqa: E402

from ttscale.sampling.backends.vllm_backend import VLLMBackend  # noqa: E402

pytestmark = [pytest.mark.gpu, pytest.mark.vllm]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return small_model_dir(tmp_path_factory.mktemp("gpu-model"))


@pytest.fixture(scope="module")
def backend(model_dir):
    be = VLLMBackend(str(model_dir), seed=0, gpu_memory_utilization=0.3)
    yield be
    be.close()


def test_gpu_engine_runs_on_cuda_with_the_seed_contract(backend):
    assert backend.info().extra["platform"] == "cuda"
    assert backend.info().extra["enforce_eager"] is False  # CUDA graphs stay on for a GPU
    whole = [s for b in backend.generate(make_requests(n=20)) for s in b]
    first = [s for b in backend.generate(make_requests(n=10)) for s in b]
    more = [s for b in backend.generate(make_requests(n=10, first_index=10)) for s in b]
    assert len(whole) == 6 * 20
    assert as_rows(first + more) == as_rows(whole)


def test_gpu_stream_and_chunked_calls_match_one_call(backend):
    want = as_rows(s for b in backend.generate(make_requests()) for s in b)
    backend.stream, backend.stream_every = True, 1
    try:
        assert as_rows(s for b in backend.generate(make_requests()) for s in b) == want
    finally:
        backend.stream = False


def test_too_little_gpu_memory_raises_with_advice(model_dir, backend):
    with pytest.raises(RuntimeError, match=r"not enough memory.*lower max_num_seqs"):
        VLLMBackend(str(model_dir), gpu_memory_utilization=0.001)
