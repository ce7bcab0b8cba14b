"""Incremental content decoding of the parser's copy of a response."""

from __future__ import annotations

import gzip
import random
import zlib
from collections.abc import Callable, Iterable

import brotli
import pytest
import zstandard

from llm_usage.proxy.decoding import make_decoder

BODY = "".join(
    f'data: {{"id":"chatcmpl-{i}","choices":[{{"delta":{{"content":"tok {i} 你好 🌍"}}}}]}}\n\n' for i in range(300)
).encode()


def raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


def zstd_streamed(data: bytes) -> bytes:
    """A zstd frame written as a stream (no content size in the header), as servers send it."""
    compressor = zstandard.ZstdCompressor().compressobj()
    return compressor.compress(data) + compressor.flush()


ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "x-gzip": gzip.compress,
    "deflate": zlib.compress,
    "br": brotli.compress,
    "zstd": lambda data: zstandard.ZstdCompressor().compress(data),
}


def decode_all(coding: str, chunks: Iterable[bytes]) -> bytes:
    """Decode chunk by chunk; empty chunks are not passed on (the stream tee never decodes b"")."""
    decode = make_decoder(coding)
    assert decode is not None
    return b"".join(decode(chunk) for chunk in chunks if chunk)


def chunkings(data: bytes, seed: str) -> Iterable[list[bytes]]:
    yield [data]
    yield [data[i : i + 1] for i in range(len(data))]
    rng = random.Random(seed)
    for top in (3, 50, 700):
        out, pos = [], 0
        while pos < len(data):
            step = rng.randint(1, top)
            out.append(data[pos : pos + step])
            pos += step
        yield out


@pytest.mark.parametrize("coding", sorted(ENCODERS))
def test_round_trip_chunk_by_chunk(coding: str) -> None:
    encoded = ENCODERS[coding](BODY)
    assert encoded != BODY
    for chunks in chunkings(encoded, coding):
        assert decode_all(coding, chunks) == BODY, [len(c) for c in chunks][:5]


@pytest.mark.parametrize("coding", sorted(ENCODERS))
def test_round_trip_split_in_two_everywhere(coding: str) -> None:
    encoded = ENCODERS[coding](BODY[:2000])
    for i in range(len(encoded) + 1):
        assert decode_all(coding, [encoded[:i], encoded[i:]]) == BODY[:2000], f"split at {i}"


def test_zstd_stream_without_content_size() -> None:
    encoded = zstd_streamed(BODY)
    for chunks in chunkings(encoded, "zstd-stream"):
        assert decode_all("zstd", chunks) == BODY


@pytest.mark.parametrize("header", ["gzip", "GZIP", " gzip ", "Br", "ZSTD", "deflate"])
def test_coding_names_are_case_and_space_insensitive(header: str) -> None:
    assert make_decoder(header) is not None


@pytest.mark.parametrize("header", ["", "identity", "Identity", " identity ", "identity, identity", ","])
def test_identity_means_no_decoder(header: str) -> None:
    assert make_decoder(header) is None


@pytest.mark.parametrize("header", ["compress", "x-compress", "snappy", "gzip, lzma", "bogus"])
def test_unknown_coding_raises(header: str) -> None:
    with pytest.raises(ValueError):
        make_decoder(header)


def test_stacked_codings_are_undone_last_first() -> None:
    """``Content-Encoding: gzip, br`` means gzip was applied first, then br."""
    encoded = brotli.compress(gzip.compress(BODY))
    for chunks in chunkings(encoded, "gzip, br"):
        assert decode_all("gzip, br", chunks) == BODY
    assert decode_all("identity, gzip, identity, br", [encoded]) == BODY


def test_raw_deflate_fallback() -> None:
    """Some servers send raw deflate (no zlib header) as "deflate"."""
    encoded = raw_deflate(BODY)
    assert decode_all("deflate", [encoded]) == BODY
    head, rest = encoded[:16], encoded[16:]
    for chunks in chunkings(rest, "raw-deflate"):
        assert decode_all("deflate", [head, *chunks]) == BODY


def test_raw_deflate_fallback_at_every_split() -> None:
    """However the first bytes arrive -- even one byte at a time -- raw deflate is recognised."""
    encoded = raw_deflate(BODY[:1500])
    for i in range(len(encoded) + 1):
        assert decode_all("deflate", [encoded[:i], encoded[i:]]) == BODY[:1500], f"split at {i}"
    assert decode_all("deflate", [encoded[i : i + 1] for i in range(len(encoded))]) == BODY[:1500]
