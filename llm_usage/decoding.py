"""Incremental content decoding for the parsers' copy of a stream.

The client always gets the bytes as they came (still ``gzip``/``br``/``deflate``/``zstd``
encoded); only the parser's copy is decoded, chunk by chunk.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import brotli
import zstandard

Decoder = Callable[[bytes], bytes]


def _zlib_decoder(wbits: int) -> Decoder:
    obj = zlib.decompressobj(wbits)
    return obj.decompress


def _deflate_decoder() -> Decoder:
    """HTTP "deflate" is zlib-wrapped by the RFC, raw deflate in practice by some servers."""
    state: dict[str, Decoder] = {}

    def decode(chunk: bytes) -> bytes:
        if "impl" not in state:
            try:
                first = zlib.decompressobj(zlib.MAX_WBITS)
                out = first.decompress(chunk)
                state["impl"] = first.decompress
                return out
            except zlib.error:
                state["impl"] = _zlib_decoder(-zlib.MAX_WBITS)
        return state["impl"](chunk)

    return decode


def _brotli_decoder() -> Decoder:
    return brotli.Decompressor().process


def _zstd_decoder() -> Decoder:
    return zstandard.ZstdDecompressor().decompressobj().decompress


_DECODERS: dict[str, Callable[[], Decoder]] = {
    "gzip": lambda: _zlib_decoder(16 + zlib.MAX_WBITS),
    "x-gzip": lambda: _zlib_decoder(16 + zlib.MAX_WBITS),
    "deflate": _deflate_decoder,
    "br": _brotli_decoder,
    "zstd": _zstd_decoder,
}


def make_decoder(content_encoding: str) -> Decoder | None:
    """A decoder for the header's codings (applied last to first), ``None`` for identity.

    Raises ``ValueError`` for a coding we cannot decode.
    """
    codings = [c.strip().lower() for c in content_encoding.split(",") if c.strip()]
    codings = [c for c in codings if c != "identity"]
    if not codings:
        return None
    steps: list[Decoder] = []
    for coding in reversed(codings):
        factory = _DECODERS.get(coding)
        if factory is None:
            raise ValueError(f"unsupported content-encoding {coding!r}")
        steps.append(factory())
    if len(steps) == 1:
        return steps[0]

    def chain(chunk: bytes) -> bytes:
        for step in steps:
            chunk = step(chunk)
        return chunk

    return chain
