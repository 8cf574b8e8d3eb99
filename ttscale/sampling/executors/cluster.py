"""Connecting to a Ray cluster: the address, what each node holds, one line when it fails.

The address is, in order: ``executor_options.address``, ``$RAY_ADDRESS``, else a new local
cluster started for this process (``address="local"``: never another process's cluster; stopped
with it). A driver that finds Ray already initialised (a notebook, a test fixture) uses that
connection and leaves it open.

Bounded and interruptible:

* An address is probed before Ray sees it: a TCP connection and an HTTP/2 preface that a gRPC
  server answers (:func:`probe`, 5 s in all), then Ray's own GCS client asked for the cluster's
  id (:func:`probe_gcs`, 8 s). An address with nothing behind it, or something that is not Ray,
  is one line within seconds, not minutes of Ray's retries (828 s before, for a closed port).
  Ray's own output while it connects (its C++ client's retries and warnings, the ``ray`` logger)
  goes to the run's log file (:func:`ttscale.core.logs.active_log_path`), not the terminal.
* Ctrl-C (SIGINT) and SIGTERM work while Ray blocks in its own code (connecting, starting a
  local cluster): :func:`interruptible` watches the signals from a thread and, when the main
  thread does not get back to Python within 3 s to raise KeyboardInterrupt itself, ends the
  process with one line (exit 130).
* Placement is judged per node (:func:`fitting`): a replica of 1.5 CPUs does not fit a cluster
  of two 1-CPU nodes, whatever the total; the message names what the largest node holds.
* Every wait on the cluster polls in short steps (:func:`wait_any`), so Ctrl-C is raised at
  once, and has a bound.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

from ttscale.errors import InputError

#: seconds a TCP probe of the cluster's address may take
PROBE_TIMEOUT = 5.0
#: an HTTP/2 client's first bytes (the preface and an empty SETTINGS frame)
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
#: seconds Ray's own client may take to get the cluster's id from the GCS
GCS_TIMEOUT = 8.0
#: seconds the main thread has to react to Ctrl-C before the watchdog ends the process
GRACE = 3.0


class ClusterLost(InputError):
    """The cluster can no longer run the work (no replica or worker left): one line, exit 3.

    Not bad input, but not a crash either: what was written is whole and a re-run resumes.
    ``resumable`` tells the caller to add the command that resumes.
    """

    exit_code = 3
    resumable = True


def say(line: str) -> None:
    """One line on stderr, above a progress bar when one is drawn."""
    try:
        from tqdm import tqdm

        tqdm.write(line, file=sys.stderr)
    except Exception:  # noqa: BLE001 - printing must never fail a run
        print(line, file=sys.stderr, flush=True)


def require_ray() -> Any:
    """The ``ray`` module; InputError naming the extra to install when it is missing."""
    try:
        import ray
    except ModuleNotFoundError as e:
        raise InputError("executor: ray needs the package 'ray' (pip install 'ttscale[ray]')") from e
    return ray


def probe(address: str, timeout: float = PROBE_TIMEOUT) -> None:
    """InputError (one line) unless a gRPC server (HTTP/2) answers at ``address`` within
    ``timeout`` seconds; ``auto``/``local`` and addresses without a port are left to Ray."""
    if address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        return
    end = time.monotonic() + timeout
    hint = ("start a cluster with `ray start --head` or set RAY_ADDRESS / executor_options.address "
            "to its address")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout) as sock:
            # Ray's GCS (and its client server) speak gRPC, so HTTP/2: its first frame answers
            # the client preface with SETTINGS. Anything else (a proxy that accepts every
            # connection, another service) would leave ray.init retrying for minutes.
            sock.settimeout(max(0.1, end - time.monotonic()))
            sock.sendall(H2_PREFACE)
            head = b""
            while len(head) < 9:
                got = sock.recv(9 - len(head))
                if not got:
                    break
                head += got
    except OSError as e:
        why = "timed out" if isinstance(e, TimeoutError) else (e.strerror or type(e).__name__)
        raise InputError(f"executor ray: no Ray cluster answers at {address} ({why} within "
                         f"{timeout:g} s); {hint}") from None
    if len(head) < 9 or head[3] != 0x04:
        raise InputError(f"executor ray: {address} is not a Ray cluster's address (it does not "
                         f"answer as Ray's GCS does); {hint}")


def probe_gcs(address: str) -> None:
    """InputError (one line) when the server at ``address`` answers but is not a Ray GCS (Ray's
    own client asks it for the cluster's id, which a GCS answers at once)."""
    if "://" in address or address in ("auto", "local"):
        return
    try:
        from ray._raylet import GcsClient
    except ImportError:  # a private API: without it ray.init finds out, more slowly
        return
    got: list[BaseException | None] = []

    def ask() -> None:
        try:
            GcsClient(address=address)
            got.append(None)
        except Exception as e:  # noqa: BLE001 - any failure here means no GCS behind the address
            got.append(e)

    t = threading.Thread(target=ask, name="ttscale-gcs-probe", daemon=True)
    t.start()
    t.join(GCS_TIMEOUT)  # Ray's client waits up to ~35 s for a server that never answers
    hint = "start a cluster with `ray start --head` or set RAY_ADDRESS to its address"
    if not got:
        raise InputError(f"executor ray: {address} does not answer as a Ray cluster's GCS within "
                         f"{GCS_TIMEOUT:g} s; {hint}")
    if got[0] is not None:
        raise InputError(f"executor ray: {address} answers but is not a Ray cluster's GCS "
                         f"({first_error_line(got[0])}); {hint}")


def first_error_line(e: BaseException) -> str:
    text = str(e).strip()
    return (text.splitlines()[0] if text else type(e).__name__)[:160]


@contextlib.contextmanager
def interruptible(what: str, grace: float = GRACE) -> Iterator[None]:
    """Make SIGINT/SIGTERM end the process within ``grace`` seconds even while the main thread
    is blocked inside Ray's C++ code (see the module doc). A no-op off the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    r, w = os.pipe()
    os.set_blocking(w, False)
    try:
        old = signal.set_wakeup_fd(w, warn_on_full_buffer=False)
    except ValueError:  # not the main interpreter
        os.close(r)
        os.close(w)
        yield
        return
    done = threading.Event()
    wanted = {int(signal.SIGINT), int(signal.SIGTERM)}

    def watch() -> None:
        while not done.is_set():
            ready, _, _ = select.select([r], [], [], 0.2)
            if not ready:
                continue
            if not wanted & set(os.read(r, 64)):
                continue
            if done.wait(grace):  # the main thread reacted (KeyboardInterrupt, or finished)
                return
            os.write(2, f"ttscale: interrupted while {what}\n".encode())
            os._exit(130)

    t = threading.Thread(target=watch, name="ttscale-interrupt", daemon=True)
    t.start()
    try:
        yield
    finally:
        done.set()
        signal.set_wakeup_fd(old)
        t.join()
        os.close(r)
        os.close(w)


@contextlib.contextmanager
def stderr_to_log() -> Iterator[str | None]:
    """Send this process's file descriptor 2 (C++ libraries write there) to the run's log file
    for the duration, when one is active; yields its path (None: stderr left alone)."""
    from ttscale.core.logs import active_log_path

    path = active_log_path()
    if path is None:
        yield None
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    saved = os.dup(2)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.dup2(fd, 2)
        yield str(path)
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(fd)


def connect(address: str | None, local_cpus: int | None = None) -> bool:
    """Initialise Ray; True when this call did it (so the caller shuts it down), else False."""
    ray = require_ray()
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    # workers' output (model loading bars, warnings) stays in the cluster's logs, not the terminal;
    # their errors still reach the driver as exceptions
    from ttscale.core.logs import active_log_path

    # Ray's "ray" logger already points at the run's log file when one is active
    kwargs: dict[str, Any] = {"logging_level": "ERROR", "log_to_driver": False,
                              "configure_logging": active_log_path() is None}
    if address is None:  # a local cluster, for this process only
        kwargs.update(include_dashboard=False, num_cpus=local_cpus)
    elif local_cpus is not None:
        raise InputError("executor_options.local_cpus: only for a local cluster (no address)")
    if address is not None:
        probe(address)
    where = address or "a new local cluster"
    with interruptible(f"connecting to the Ray cluster at {where}"), stderr_to_log():
        if address is not None:
            probe_gcs(address)
        try:
            ray.init(address=address or "local", **kwargs)  # local: never another's cluster
        except (ConnectionError, TimeoutError, RuntimeError, ValueError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise InputError(f"executor ray: cannot connect to the cluster at {where} ({first[:200]})"
                             "; start one with "
                             "`ray start --head` or set RAY_ADDRESS") from e
    return True


def resources() -> dict[str, float]:
    """The cluster's total resources (CPU, GPU, memory, ...)."""
    ray = require_ray()
    return {k: float(v) for k, v in ray.cluster_resources().items()}


def node_resources(free: bool = False) -> list[dict[str, float]]:
    """Each live node's resources (``free``: what is not reserved now), largest CPU first."""
    ray = require_ray()
    if free:
        try:
            from ray._private.state import state

            per = state.available_resources_per_node()
            nodes = [{k: float(v) for k, v in res.items()} for res in per.values()]
        except Exception:  # noqa: BLE001 - a private API: fall back to the cluster's total
            nodes = [{k: float(v) for k, v in ray.available_resources().items()}]
    else:
        nodes = [{k: float(v) for k, v in n.get("Resources", {}).items()}
                 for n in ray.nodes() if n.get("Alive")]
    return sorted(nodes, key=lambda r: (r.get("GPU", 0.0), r.get("CPU", 0.0)), reverse=True)


def _units(node: dict[str, float], per_unit: dict[str, float]) -> int:
    holds = [int(node.get(res, 0.0) // need + 1e-9) for res, need in per_unit.items() if need > 0]
    return min(holds) if holds else 1 << 30


def describe(node: dict[str, float] | None, per_unit: dict[str, float]) -> str:
    """``CPU 1, GPU 0``: a node's amounts of the resources a unit needs."""
    keys = [k for k, v in per_unit.items() if v > 0] or ["CPU"]
    return ", ".join(f"{k} {(node or {}).get(k, 0.0):g}" for k in keys)


def need_text(per_unit: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:g}" for k, v in per_unit.items() if v > 0) or "nothing"


def fitting(per_unit: dict[str, float], asked: int | None, what: str, key: str = "replicas",
            fit: bool = False) -> int:
    """How many units of ``per_unit`` resources to start: ``asked``, checked node by node (a unit
    lives on one node); by default as many as the nodes hold (at least one). ``fit``: fewer than
    ``asked`` when that is all the cluster holds, with one line (a resume on a smaller cluster)."""
    nodes = node_resources()
    cap = sum(_units(n, per_unit) for n in nodes) if nodes else 0
    if not any(v > 0 for v in per_unit.values()):
        cap = asked or 1
    largest = max(nodes, key=lambda n: tuple(n.get(k, 0.0) for k, v in per_unit.items() if v > 0),
                  default=None)
    if cap == 0:
        raise InputError(f"executor_options: one {what} needs {need_text(per_unit)} on one node; "
                         f"the largest of the cluster's {len(nodes)} node(s) has "
                         f"{describe(largest, per_unit)}: ask for at most that per {what} "
                         "(executor_options.num_cpus / num_gpus)")
    if asked is None:
        return max(1, cap)
    if asked > cap:
        if fit:
            say(f"executor ray: this cluster holds {cap} {what}(s) of {need_text(per_unit)} "
                f"({len(nodes)} node(s)), not the {asked} of this run: going on with {cap}")
            return cap
        raise InputError(f"executor_options.{key}: {asked} {what}s need "
                         f"{', '.join(f'{k} {v * asked:g}' for k, v in per_unit.items() if v > 0)}; "
                         f"the cluster holds {cap} ({len(nodes)} node(s), the largest with "
                         f"{describe(largest, per_unit)})")
    return asked


def shutdown(started: bool) -> None:
    if started:
        with interruptible("disconnecting from the Ray cluster"):
            require_ray().shutdown()


def wait_any(ray: Any, refs: list[Any], timeout: float, step: float = 0.5) -> list[Any]:
    """The refs of ``refs`` ready within ``timeout`` seconds (at least one when any is), polled in
    ``step``-second waits so that Ctrl-C is raised between them."""
    end = time.monotonic() + max(0.0, timeout)
    while True:
        left = end - time.monotonic()
        ready, _ = ray.wait(refs, num_returns=1, timeout=max(0.0, min(step, left)))
        if ready or left <= 0:
            if ready:  # take every other one that is ready too
                more, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
                return list(more) or list(ready)
            return []


def free_text(per_unit: dict[str, float]) -> str:
    """What the node with the most free resources has free now (for a message)."""
    nodes = node_resources(free=True)
    best = max(nodes, key=lambda n: tuple(n.get(k, 0.0) for k, v in per_unit.items() if v > 0) or (0,),
               default=None)
    return f"the freest node has {describe(best, per_unit)} free"


def start_pool(ray: Any, handles: list[Any], refs: list[Any], timeout: float, what: str,
               per_unit: dict[str, float]) -> list[int]:
    """Indices of the actors whose start call (``refs``) finished within ``timeout`` seconds;
    the others (not placeable: the cluster is busy or too small) are killed. None up: InputError.
    Ctrl-C is raised within half a second, the actors killed."""
    up: set[int] = set()
    end = time.monotonic() + timeout
    try:
        while len(up) < len(refs) and time.monotonic() < end:
            left = [r for i, r in enumerate(refs) if i not in up]
            ready = wait_any(ray, left, end - time.monotonic())
            up |= {refs.index(r) for r in ready}
            if not ready:
                break
    except BaseException:
        for h in handles:
            ray.kill(h)
        raise
    for i, h in enumerate(handles):
        if i not in up:
            ray.kill(h)
    if not up:
        raise InputError(f"executor ray: no {what} started within {timeout:g} s (each needs "
                         f"{need_text(per_unit)} on one node; {free_text(per_unit)}); free that much "
                         "on one node or raise executor_options.start_timeout")
    if len(up) < len(refs):
        say(f"executor ray: {len(refs) - len(up)} of {len(refs)} {what}s could not be placed "
            f"within {timeout:g} s (each needs {need_text(per_unit)}); going on with {len(up)}")
    return sorted(up)
