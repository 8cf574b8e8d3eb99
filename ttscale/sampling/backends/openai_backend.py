"""Sampling through an OpenAI-compatible HTTP server (vLLM's ``vllm serve``, OpenAI, others).

One request of ttscale becomes one POST to ``/v1/completions`` (or ``/v1/chat/completions``) with
``n = request.n`` and ``seed = request.seed``. vLLM's server seeds the ``n`` children of such a
request ``seed + i``, exactly like its offline engine, so samples drawn through a vLLM server match
the offline :class:`~ttscale.sampling.backends.vllm_backend.VLLMBackend` for the same model and seeds. A
server that caps ``n`` (it answers 400 naming ``n``) is detected once, after which every request is
sent as ``n = 1`` requests with seeds ``seed + i``: the same samples on a server that honours seeds.

Per-sample output token counts come from the per-choice log-probabilities (``logprobs = 0`` on
completions, ``logprobs = true`` on chat): ``usage.completion_tokens`` sums over the choices of a
request, so it is used alone only for ``n = 1``. Where a server returns neither, the count is -1.

Requests run concurrently (``concurrency`` at a time, async httpx in a background thread), paced
by a token bucket (``rate_limit`` requests per second, ``burst`` at once); 429, 5xx and connection
errors are retried with exponential back-off and jitter, honouring ``Retry-After``; other 4xx fail
at once with the server's message. ``generate`` yields each request's samples as soon as it is done.
"""

from __future__ import annotations

import asyncio
import email.utils
import os
import queue
import random
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx  # noqa: F401 - the openai extra; missing, get_backend names it with the pip hint

from ttscale.errors import InputError
from ttscale.sampling.backends.base import Backend, BackendInfo, Request, Sample
from ttscale.sampling.backends.outage import DEFAULT_RETRY_WINDOW, Outage, preflight

ENDPOINTS = {"completions": "/completions", "chat": "/chat/completions"}
RETRY_STATUS = frozenset({408, 409, 425, 429}) | frozenset(range(500, 600))
_N_CAP_RE = re.compile(r"(\bn\b|'n'|\"n\"|num_choices|number of choices)", re.IGNORECASE)


class TokenBucket:
    """Asyncio token bucket: at most ``burst`` acquisitions at once, refilled at ``rate`` per second."""

    def __init__(self, rate: float, burst: int = 1, clock: Any = time.monotonic):
        if rate <= 0:
            raise InputError(f"openai backend: option 'rate_limit' must be > 0, got {rate}")
        self.rate, self.capacity, self._clock = float(rate), float(max(1, burst)), clock
        self._tokens, self._last = self.capacity, clock()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:  # FIFO: waiters are served in arrival order
            while True:
                now = self._clock()
                self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
                self._last = now
                if self._tokens >= 1.0:
                    self._tokens -= 1.0
                    return
                await asyncio.sleep((1.0 - self._tokens) / self.rate)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds (float accepted) or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Exponential back-off with "equal jitter": d/2 + U(0, d/2), d = min(cap, base * 2**attempt)."""
    d = min(cap, base * (2.0**attempt))
    return d / 2.0 + rng.uniform(0.0, d / 2.0)


class OpenAIBackend(Backend):
    """Samples from an OpenAI-compatible server; see the module docstring for the protocol."""

    name = "openai"

    def __init__(
        self,
        model: str,
        *,
        base_url: str,
        api_key: str | None = None,
        endpoint: str = "completions",
        concurrency: int = 16,
        max_retries: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        rate_limit: float | None = None,
        burst: int = 1,
        timeout: float = 600.0,
        max_n: int | None = None,
        logprobs: bool = True,
        extra_body: dict[str, Any] | None = None,
        seed: int = 0,
        retry_window: float = DEFAULT_RETRY_WINDOW,
    ):
        if endpoint not in ENDPOINTS:
            raise InputError(f"openai backend: option 'endpoint' must be one of {sorted(ENDPOINTS)}, got {endpoint!r}")
        if int(concurrency) < 1:
            raise InputError(f"openai backend: option 'concurrency' must be >= 1, got {concurrency}")
        if int(max_retries) < 0:
            raise InputError(f"openai backend: option 'max_retries' must be >= 0, got {max_retries}")
        if max_n is not None and int(max_n) < 1:
            raise InputError(f"openai backend: option 'max_n' must be >= 1, got {max_n}")
        if rate_limit is not None and float(rate_limit) <= 0:
            raise InputError(f"openai backend: option 'rate_limit' must be > 0, got {rate_limit}")
        if not str(base_url).startswith(("http://", "https://")):
            raise InputError(f"openai backend: option 'base_url' must start with http:// or https://, got {base_url!r}")
        self.model = model
        self.base_url = str(base_url).rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.endpoint = endpoint
        self.concurrency = int(concurrency)
        self.max_retries = int(max_retries)
        self.backoff, self.max_backoff = float(backoff), float(max_backoff)
        self.rate_limit = None if rate_limit is None else float(rate_limit)
        self.burst = int(burst)
        self.timeout = float(timeout)
        self.max_n = None if max_n is None else int(max_n)
        self.logprobs = bool(logprobs)
        self.extra_body = dict(extra_body or {})
        self._rng = random.Random(seed)
        self.outage = Outage(self.base_url, float(retry_window))
        #: every HTTP attempt: (monotonic time it was sent, status or exception name); for reports
        self.attempts: list[tuple[float, str]] = []

    # ------------------------------------------------------------------ public
    def info(self) -> BackendInfo:
        return BackendInfo(
            name=self.name,
            model=self.model,
            extra={"base_url": self.base_url, "endpoint": self.endpoint, "max_n": self.max_n},
        )

    def validate(self, requests: list[Request]) -> None:
        """Before a run writes anything: the server answers and serves this model (GET /models)."""
        if requests:
            preflight(self.base_url, self.model, self.api_key, timeout=min(self.timeout, 10.0))

    def generate(self, requests: list[Request]) -> Iterator[list[Sample]]:
        """Yield each request's samples (all ``n`` of them, in index order) as it finishes."""
        requests = list(requests)
        if not requests:
            return
        out: queue.Queue[Any] = queue.Queue()
        done = object()
        loop = asyncio.new_event_loop()
        main = loop.create_task(self._run_all(requests, out))

        def worker() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(main)
            except asyncio.CancelledError:
                pass
            except BaseException as exc:  # handed to the consumer thread
                out.put(exc)
            finally:
                loop.close()
                out.put(done)

        thread = threading.Thread(target=worker, name="ttscale-openai", daemon=True)
        thread.start()
        try:
            while True:
                item = out.get()
                if item is done:
                    break
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            if thread.is_alive():  # the consumer stopped early: cancel what is in flight
                try:
                    loop.call_soon_threadsafe(main.cancel)
                except RuntimeError:  # the loop closed in between
                    pass
            thread.join()

    # ------------------------------------------------------------------ internals
    async def _run_all(self, requests: list[Request], out: queue.Queue) -> None:

        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        bucket = None if self.rate_limit is None else TokenBucket(self.rate_limit, self.burst)
        sem = asyncio.Semaphore(self.concurrency)
        async with httpx.AsyncClient(
            base_url=self.base_url, headers=headers, timeout=self.timeout, limits=limits
        ) as client:

            async def one(req: Request) -> None:
                samples = await self._request(client, sem, bucket, req)
                out.put(samples)

            tasks = [asyncio.create_task(one(r)) for r in requests]
            try:
                for fut in asyncio.as_completed(tasks):
                    await fut
            finally:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    async def _request(self, client: Any, sem: asyncio.Semaphore, bucket: TokenBucket | None,
                       req: Request) -> list[Sample]:
        if req.n < 1:
            raise InputError(f"openai backend: request for problem {req.problem_id!r}: field 'n' must be >= 1, got {req.n}")
        samples: list[Sample] = []
        offset = 0
        while offset < req.n:
            cap = self.max_n if self.max_n is not None else req.n
            n = min(cap, req.n - offset)
            body = self._body(req, n, req.seed + offset)
            try:
                data = await self._post(client, sem, bucket, body)
            except _NCapped:
                if n == 1:
                    raise
                self.max_n = 1  # the server caps n: from now on, n = 1 requests with seed + i
                continue
            samples.extend(self._samples(req, data, offset, n))
            offset += n
        return samples

    def _body(self, req: Request, n: int, seed: int) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "n": n,
            "seed": int(seed),
            "temperature": float(req.temperature),
            "top_p": float(req.top_p),
            "max_tokens": int(req.max_tokens),
        }
        if req.stop:
            body["stop"] = list(req.stop)
        if self.endpoint == "chat":
            msgs = req.prompt if isinstance(req.prompt, list) else [{"role": "user", "content": req.prompt}]
            body["messages"] = msgs
            if self.logprobs:
                body["logprobs"] = True
        else:
            if isinstance(req.prompt, list):
                raise InputError(f"openai backend: request for problem {req.problem_id!r}: field 'prompt' is a chat "
                                 "message list; use endpoint='chat' for chat prompts")
            body["prompt"] = req.prompt
            if self.logprobs:
                body["logprobs"] = 0
        body.update(self.extra_body)
        return body

    async def _post(self, client: Any, sem: asyncio.Semaphore, bucket: TokenBucket | None,
                    body: dict[str, Any]) -> dict[str, Any]:

        path = ENDPOINTS[self.endpoint]
        last = ""
        attempt = 0
        while True:  # retries: max_retries of them, and more while an outage is within retry_window
            wait: float | None = None
            async with sem:
                if bucket is not None:
                    await bucket.acquire()
                sent = time.monotonic()
                try:
                    resp = await client.post(path, json=body)
                except httpx.TransportError as exc:  # connection refused/reset, timeouts
                    self.attempts.append((sent, type(exc).__name__))
                    last = f"{type(exc).__name__}: {exc}"
                    self.outage.failed(type(exc).__name__)
                else:
                    self.attempts.append((sent, str(resp.status_code)))
                    if resp.status_code == 200:
                        self.outage.recovered()
                        try:
                            return resp.json()
                        except ValueError as exc:
                            raise RuntimeError(f"openai backend: POST {self.base_url}{path}: response is not JSON: {exc}") from exc
                    message = _error_message(resp)
                    if resp.status_code not in RETRY_STATUS:
                        if resp.status_code == 400 and body.get("n", 1) > 1 and _N_CAP_RE.search(message):
                            raise _NCapped(message)
                        raise InputError(f"openai backend: POST {self.base_url}{path} (model {self.model!r}) "
                                         f"returned {resp.status_code}: {message}")
                    last = f"HTTP {resp.status_code}: {message}"
                    wait = parse_retry_after(resp.headers.get("retry-after"))
                    if resp.status_code in (502, 503, 504):  # a proxy without its server, a restart
                        self.outage.failed(f"HTTP {resp.status_code}")
            if attempt >= self.max_retries and (self.outage.since is None or self.outage.exhausted()):
                break
            if wait is None:
                wait = backoff_delay(attempt, self.backoff, self.max_backoff, self._rng)
            if self.outage.since is not None and attempt >= self.max_retries:
                wait = min(wait, max(0.1, self.outage.remaining()))
            attempt += 1
            await asyncio.sleep(wait)
        if self.outage.exhausted():
            raise self.outage.give_up(last)
        raise RuntimeError(f"openai backend: POST {self.base_url}{path} failed after {attempt + 1} "
                           f"attempts; last error: {last}")

    def _samples(self, req: Request, data: dict[str, Any], offset: int, n: int) -> list[Sample]:
        choices = data.get("choices")
        if not isinstance(choices, list) or len(choices) != n:
            got = len(choices) if isinstance(choices, list) else "no"
            raise RuntimeError(f"openai backend: response for problem {req.problem_id!r} has {got} choices, expected {n}")
        usage = data.get("usage") or {}
        prompt_tokens = int(usage.get("prompt_tokens", -1))
        samples = []
        for pos, ch in enumerate(sorted(choices, key=lambda c: c.get("index", 0))):
            idx = int(ch.get("index", pos))
            if self.endpoint == "chat":
                text = (ch.get("message") or {}).get("content") or ""
            else:
                text = ch.get("text") or ""
            count = _choice_tokens(ch)
            if count is None:
                count = int(usage.get("completion_tokens", -1)) if n == 1 else -1
            samples.append(Sample(
                problem_id=req.problem_id,
                temperature=float(req.temperature),
                sample_index=req.first_index + offset + idx,
                seed=req.seed + offset + idx,
                text=text,
                num_prompt_tokens=prompt_tokens,
                num_output_tokens=count,
                finish_reason=str(ch.get("finish_reason") or "unknown"),
            ))
        return samples


class _NCapped(Exception):
    """The server refused ``n > 1``."""


def _choice_tokens(choice: dict[str, Any]) -> int | None:
    """Output tokens of one choice from its token ids or log-probabilities, if the server sent them."""
    if isinstance(choice.get("token_ids"), list):
        return len(choice["token_ids"])
    lp = choice.get("logprobs")
    if isinstance(lp, dict):
        if isinstance(lp.get("tokens"), list):  # completions
            return len(lp["tokens"])
        if isinstance(lp.get("content"), list):  # chat
            return len(lp["content"])
    return None


def _error_message(resp: Any) -> str:
    try:
        data = resp.json()
    except ValueError:
        return " ".join(resp.text.split())[:300] or resp.reason_phrase
    err = data.get("error", data) if isinstance(data, dict) else data
    if isinstance(err, dict):
        return str(err.get("message") or err)[:300]
    return str(err)[:300]
