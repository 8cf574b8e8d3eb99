"""A small OpenAI-compatible server for a local causal LM, through ttscale's transformers backend.

    python scripts/serve_openai.py --model embedded --port 8000 [--served-model-name NAME]

Serves ``GET /v1/models`` and ``POST /v1/completions`` (``prompt``, ``n``, ``seed``,
``temperature``, ``top_p``, ``max_tokens``, ``stop``, ``logprobs``): choice ``i`` is drawn with seed
``seed + i``, like vLLM's server, so a run sampled through it is reproducible and resumes exactly.
Meant for trying the openai backend (and its outage handling) where vLLM's server is too slow to
start; for real serving use vLLM (README, "vLLM's server on CPU").
"""

from __future__ import annotations

import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ttscale.sampling.backends.base import Request
from ttscale.sampling.backends.transformers_backend import TransformersBackend


def make_handler(backend: TransformersBackend, name: str) -> type[BaseHTTPRequestHandler]:
    lock = threading.Lock()  # one generation at a time: the model is not thread-safe

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _send(self, status: int, obj: object) -> None:
            data = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path.rstrip("/") == "/v1/models":
                return self._send(200, {"object": "list", "data": [{"id": name, "object": "model"}]})
            self._send(404, {"error": {"message": f"no route {self.path}"}})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            if self.path.rstrip("/") != "/v1/completions":
                return self._send(404, {"error": {"message": f"no route {self.path}"}})
            if body.get("model") != name:
                return self._send(404, {"error": {"message": f"model {body.get('model')!r} not served"}})
            stop = body.get("stop") or ()
            req = Request("p", str(body["prompt"]), float(body.get("temperature", 1.0)), int(body.get("n", 1)),
                          int(body.get("seed", 0)), 0, int(body.get("max_tokens", 16)),
                          tuple([stop] if isinstance(stop, str) else stop), float(body.get("top_p", 1.0)))
            with lock:
                samples = [s for batch in backend.generate([req]) for s in batch]
            choices = [{"index": s.sample_index, "text": s.text, "finish_reason": s.finish_reason,
                        "logprobs": {"tokens": ["?"] * s.num_output_tokens}} for s in samples]
            usage = {"prompt_tokens": samples[0].num_prompt_tokens if samples else 0,
                     "completion_tokens": sum(s.num_output_tokens for s in samples)}
            self._send(200, {"object": "text_completion", "model": name, "choices": choices, "usage": usage})

    return Handler


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="embedded", help="'embedded', a model folder or a Hugging Face id")
    ap.add_argument("--served-model-name", default=None, help="name clients ask for (default: --model)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--threads", type=int, default=1, help="CPU threads for the model")
    args = ap.parse_args()
    backend = TransformersBackend(args.model, threads=args.threads)
    server = ThreadingHTTPServer((args.host, args.port), make_handler(backend, args.served_model_name or args.model))
    print(f"serving {args.model} at http://{args.host}:{args.port}/v1", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
