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


def _is_zlib_header(head: bytes) -> bool:
    """RFC 1950: CM = 8 (deflate) and the 16-bit header is a multiple of 31."""
    return head[0] & 0x0F == 8 and (head[0] << 8 | head[1]) % 31 == 0


class _DeflateDecoder:
    """HTTP "deflate" is zlib-wrapped by the RFC (9110 §8.4.1.2), raw deflate in practice
    from some servers. The first two bytes tell which; they may arrive one at a time."""

    def __init__(self) -> None:
        self._head = b""
        self._impl: Decoder | None = None

    def __call__(self, chunk: bytes) -> bytes:
        if self._impl is None:
            self._head += chunk
            if len(self._head) < 2:
                return b""
            wbits = zlib.MAX_WBITS if _is_zlib_header(self._head) else -zlib.MAX_WBITS
            self._impl = _zlib_decoder(wbits)
            chunk, self._head = self._head, b""
        return self._impl(chunk)


class _ZstdDecoder:
    """zstd content may hold several frames; a decompressobj handles one."""

    def __init__(self) -> None:
        self._obj = zstandard.ZstdDecompressor().decompressobj()

    def __call__(self, chunk: bytes) -> bytes:
        out = []
        while chunk:
            if self._obj.eof:
                self._obj = zstandard.ZstdDecompressor().decompressobj()
            out.append(self._obj.decompress(chunk))
            chunk = self._obj.unused_data if self._obj.eof else b""
        return b"".join(out)


def _brotli_decoder() -> Decoder:
    return brotli.Decompressor().process


_DECODERS: dict[str, Callable[[], Decoder]] = {
    "gzip": lambda: _zlib_decoder(16 + zlib.MAX_WBITS),
    "x-gzip": lambda: _zlib_decoder(16 + zlib.MAX_WBITS),
    "deflate": _DeflateDecoder,
    "br": _brotli_decoder,
    "zstd": _ZstdDecoder,
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
