"""The narrow channel between the trusted test process and the candidate's process.

Standard library only (imported by the sandbox worker, run with ``python -I -S``).

Messages are length-prefixed (4 bytes, big-endian) JSON texts. Values cross as *plain data*
only: None, bool, int, float, complex, str, bytes, and list, tuple, dict, set, frozenset of
those, of exact built-in types (no subclasses, no objects with their own ``__eq__``). JSON
alone would turn tuples into lists and dict keys into strings, so every container and every
non-JSON scalar is tagged (``{"t": [...]}`` a tuple, ``{"d": [[k, v], ...]}`` a dict, ...).

The receiving side decodes with :func:`json.loads` (no code runs, unlike pickle) and then
rebuilds the values itself: whatever the sender wrote, the result is made of exact built-in
types, or decoding fails with :class:`NotPlainData`.
"""

from __future__ import annotations

import json
import os
import select
import time

#: largest message either side accepts (bytes)
MAX_MESSAGE = 64 << 20
#: deepest nesting of containers accepted
MAX_DEPTH = 200
#: ints with more bits are sent as hex text (JSON ints are limited by sys.int_info digits)
BIG_INT_BITS = 4000

SCALARS = (type(None), bool, str, float)
TAGS = {"t": tuple, "l": list, "s": set, "f": frozenset}


class NotPlainData(Exception):
    """A value that cannot cross the channel (its type, or a malformed message)."""


class ChannelClosed(Exception):
    """The other side closed its end (its process ended)."""


def _tag(x: object, depth: int = 0, path: frozenset = frozenset()) -> object:
    if depth > MAX_DEPTH:
        raise NotPlainData(f"values nested deeper than {MAX_DEPTH} levels")
    t = type(x)
    if t in SCALARS:
        return x
    if t is int:
        return {"i": hex(x)} if x.bit_length() > BIG_INT_BITS else x
    if t is complex:
        return {"c": [x.real, x.imag]}
    if t is bytes:
        return {"b": x.hex()}
    if t in (list, tuple, set, frozenset, dict):
        if id(x) in path:
            raise NotPlainData("a value that contains itself")
        path = path | {id(x)}
        if t is dict:
            return {"d": [[_tag(k, depth + 1, path), _tag(v, depth + 1, path)] for k, v in x.items()]}
        key = {tuple: "t", list: "l", set: "s", frozenset: "f"}[t]
        return {key: [_tag(v, depth + 1, path) for v in x]}
    raise NotPlainData(f"a value of type {t.__name__!r}: only plain data (numbers, strings, "
                       "bytes, None, and lists, tuples, dicts, sets of those) crosses to the tests")


def _untag(x: object, depth: int = 0) -> object:
    if depth > MAX_DEPTH:
        raise NotPlainData(f"values nested deeper than {MAX_DEPTH} levels")
    t = type(x)
    if t in SCALARS or t is int:
        return x
    if t is not dict or len(x) != 1:
        raise NotPlainData("a malformed message")
    (key, body), = x.items()
    try:
        if key == "i" and type(body) is str:
            return int(body, 16)
        if key == "c" and type(body) is list and len(body) == 2 and all(type(v) in (int, float) for v in body):
            return complex(body[0], body[1])
        if key == "b" and type(body) is str:
            return bytes.fromhex(body)
        if type(body) is not list:
            raise NotPlainData("a malformed message")
        if key == "d":
            out = {}
            for pair in body:
                if type(pair) is not list or len(pair) != 2:
                    raise NotPlainData("a malformed message")
                out[_untag(pair[0], depth + 1)] = _untag(pair[1], depth + 1)
            return out
        if key in TAGS:
            return TAGS[key](_untag(v, depth + 1) for v in body)
    except TypeError as e:  # an unhashable key or set member
        raise NotPlainData(f"a malformed message ({e})") from None
    except ValueError as e:
        raise NotPlainData(f"a malformed message ({e})") from None
    raise NotPlainData("a malformed message")


def encode(value: object) -> bytes:
    """``value`` as a message body; NotPlainData if it is not plain data."""
    return json.dumps(_tag(value), separators=(",", ":"), allow_nan=True).encode()


def decode(data: bytes) -> object:
    """A message body back into plain data; NotPlainData if malformed."""
    try:
        raw = json.loads(data)
    except (ValueError, RecursionError) as e:
        raise NotPlainData(f"a malformed message ({type(e).__name__})") from None
    try:
        return _untag(raw)
    except RecursionError:
        raise NotPlainData("a malformed message (too deep)") from None


def send(fd: int, body: bytes, deadline: float | None = None) -> None:
    """Write one message (length prefix + body) on ``fd``; ChannelClosed if the reader is gone."""
    data = len(body).to_bytes(4, "big") + body
    view = memoryview(data)
    while view:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([], [fd], [], remaining)[1]:
                raise TimeoutError("the other side does not read")
        try:
            n = os.write(fd, view)
        except (BrokenPipeError, ConnectionResetError):
            raise ChannelClosed() from None
        view = view[n:]


def _read_exact(fd: int, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            raise ChannelClosed()
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def receive(fd: int, limit: int = MAX_MESSAGE) -> bytes:
    """Read one message body from ``fd``; ChannelClosed at EOF, NotPlainData if over ``limit``."""
    n = int.from_bytes(_read_exact(fd, 4), "big")
    if n > limit:
        raise NotPlainData(f"a message of {n} bytes (the limit is {limit})")
    return _read_exact(fd, n)
