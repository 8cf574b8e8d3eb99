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


#: |ints| below this cross as JSON numbers; others as hex text (see BIG_INT_BITS)
_BIG = 1 << BIG_INT_BITS
_CONTAINERS = {tuple: "t", list: "l", set: "s", frozenset: "f"}


def _tag(x: object, depth: int = 0, path: set | None = None) -> object:
    """``x`` as JSON-ready tagged data. ``path``: ids of the containers being tagged (a value
    that contains itself is refused). Scalars inside containers are taken inline, without a
    call: most values are flat lists of numbers and strings."""
    if depth > MAX_DEPTH:
        raise NotPlainData(f"values nested deeper than {MAX_DEPTH} levels")
    t = type(x)
    if t in SCALARS:
        return x
    if t is int:
        return x if -_BIG < x < _BIG else {"i": hex(x)}
    if t is complex:
        return {"c": [x.real, x.imag]}
    if t is bytes:
        return {"b": x.hex()}
    if t in _CONTAINERS or t is dict:
        if path is None:
            path = set()
        elif id(x) in path:
            raise NotPlainData("a value that contains itself")
        path.add(id(x))
        d = depth + 1
        if d > MAX_DEPTH and x:  # its items are one level too deep, scalars too
            raise NotPlainData(f"values nested deeper than {MAX_DEPTH} levels")
        if t is dict:
            out = {"d": [[k if (tk := type(k)) in SCALARS or (tk is int and -_BIG < k < _BIG)
                          else _tag(k, d, path),
                          v if (tv := type(v)) in SCALARS or (tv is int and -_BIG < v < _BIG)
                          else _tag(v, d, path)] for k, v in x.items()]}
        else:
            out = {_CONTAINERS[t]: [v if (tv := type(v)) in SCALARS or (tv is int and -_BIG < v < _BIG)
                                    else _tag(v, d, path) for v in x]}
        path.discard(id(x))
        return out
    raise NotPlainData(f"a value of type {t.__name__!r}: only plain data (numbers, strings, "
                       "bytes, None, and lists, tuples, dicts, sets of those) crosses to the tests")


_FLAT = (type(None), bool, str, float, int)  # what JSON decodes to that needs no rebuilding


def _untag(x: object, depth: int = 0) -> object:
    if depth > MAX_DEPTH:
        raise NotPlainData(f"values nested deeper than {MAX_DEPTH} levels")
    t = type(x)
    if t in _FLAT:
        return x
    if t is not dict or len(x) != 1:
        raise NotPlainData("a malformed message")
    (key, body), = x.items()
    d = depth + 1
    try:
        if key == "i" and type(body) is str:
            return int(body, 16)
        if key == "c" and type(body) is list and len(body) == 2 and all(type(v) in (int, float) for v in body):
            return complex(body[0], body[1])
        if key == "b" and type(body) is str:
            return bytes.fromhex(body)
        if type(body) is not list:
            raise NotPlainData("a malformed message")
        if d > MAX_DEPTH and body and (key == "d" or key in TAGS):  # items one level too deep
            raise NotPlainData(f"values nested deeper than {MAX_DEPTH} levels")
        if key == "d":
            out = {}
            for pair in body:
                if type(pair) is not list or len(pair) != 2:
                    raise NotPlainData("a malformed message")
                k, v = pair
                out[k if type(k) in _FLAT else _untag(k, d)] = v if type(v) in _FLAT else _untag(v, d)
            return out
        if key in TAGS:
            items = [v if type(v) in _FLAT else _untag(v, d) for v in body]
            return items if key == "l" else TAGS[key](items)
    except TypeError as e:  # an unhashable key or set member
        raise NotPlainData(f"a malformed message ({e})") from None
    except ValueError as e:
        raise NotPlainData(f"a malformed message ({e})") from None
    raise NotPlainData("a malformed message")


# JSON text without the per-call set-up of json.dumps/json.loads (the same output: compact
# separators, ASCII only, NaN and infinities allowed; no circular check, done by _tag).
_c_encoder = getattr(json.encoder, "c_make_encoder", None)
if _c_encoder is not None:
    _iterencode = _c_encoder(None, None, json.encoder.encode_basestring_ascii, None, ":", ",",
                             False, False, True)

    def _dumps(obj: object) -> str:
        return "".join(_iterencode(obj, 0))
else:  # pragma: no cover - CPython always has _json
    _dumps = json.JSONEncoder(separators=(",", ":"), allow_nan=True).encode
_loads = json.JSONDecoder().decode


def encode(value: object) -> bytes:
    """``value`` as a message body; NotPlainData if it is not plain data."""
    return _dumps(_tag(value)).encode()


def decode(data: bytes) -> object:
    """A message body back into plain data; NotPlainData if malformed."""
    try:
        raw = _loads(data.decode("utf-8", "surrogatepass"))
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
