"""What a gzip-compressed event stream looks like on the wire, read without httpx2's decoder.

httpx2 (like httpx and Chromium) decodes only the first gzip member of a body and drops the
rest without an error, so to see what a compressing middleware really sends, these read the raw
bytes (`iter_raw`) and decompress them here: when each event became readable, and how the body
splits into gzip members (one per event when Django compresses an ASGI stream).
"""

from __future__ import annotations

import time
import zlib

import httpx2

from server.sse import Decoder

GZIP = {"Accept-Encoding": "gzip"}


def _gunzip() -> zlib._Decompress:
    return zlib.decompressobj(16 + zlib.MAX_WBITS)  # 16+: expect a gzip header


def readable_times(url: str) -> list[tuple[float, str]]:
    """(seconds since the request, data) for each event, as soon as it could be decompressed."""
    gunzip, decoder, seen = _gunzip(), Decoder(), []
    start = time.perf_counter()
    with httpx2.stream("GET", url, headers=GZIP) as response:
        if response.headers.get("content-encoding") != "gzip":
            raise ValueError(f"{url} was not compressed")
        for chunk in response.iter_raw():  # the bytes as sent, still compressed
            events = decoder.feed(gunzip.decompress(chunk))
            seen += [(time.perf_counter() - start, event.data) for event in events]
    return seen


def gzip_members(raw: bytes) -> list[bytes]:
    """Split a gzip body into its members (gzip allows several in a row): each decompressed."""
    members = []
    while raw:
        gunzip = _gunzip()
        members.append(gunzip.decompress(raw))
        raw = gunzip.unused_data
    return members


def member_sizes(url: str) -> list[int]:
    """The compressed size of each gzip member of the body at `url`."""
    with httpx2.stream("GET", url, headers=GZIP) as response:
        raw = b"".join(response.iter_raw())
    sizes = []
    while raw:
        gunzip = _gunzip()
        gunzip.decompress(raw)
        sizes.append(len(raw) - len(gunzip.unused_data))
        raw = gunzip.unused_data
    return sizes
