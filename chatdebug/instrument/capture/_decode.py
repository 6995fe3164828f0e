"""Incremental decoders for the ``Content-Encoding`` of captured responses.

The transport sits below httpx's own decoding: it sees the bytes on the wire. The caller
keeps getting exactly those bytes (httpx decodes them for it); these decoders produce the
plain text we capture and parse. brotli and zstd need their optional packages; without
them the capture records that the body could not be decoded.
"""

from __future__ import annotations

import zlib
from typing import Any, Protocol

__all__ = ["DecodeError", "Decoder", "make_decoder"]


class DecodeError(Exception):
    """The captured body could not be decoded (the caller is not affected)."""


class Decoder(Protocol):
    def decode(self, data: bytes) -> bytes: ...

    def flush(self) -> bytes: ...


class _Identity:
    def decode(self, data: bytes) -> bytes:
        return data

    def flush(self) -> bytes:
        return b""


class _Zlib:
    """gzip (``wbits=16+MAX``) or deflate; deflate falls back to raw deflate, as some
    servers send a raw stream under that name."""

    def __init__(self, gzip: bool) -> None:
        self._gzip = gzip
        self._first = True
        self._obj = zlib.decompressobj(zlib.MAX_WBITS | 16 if gzip else zlib.MAX_WBITS)

    def decode(self, data: bytes) -> bytes:
        try:
            if self._first and not self._gzip and data:
                self._first = False
                try:
                    return self._obj.decompress(data)
                except zlib.error:
                    self._obj = zlib.decompressobj(-zlib.MAX_WBITS)
                    return self._obj.decompress(data)
            self._first = False
            return self._obj.decompress(data)
        except zlib.error as exc:
            raise DecodeError(str(exc)) from exc

    def flush(self) -> bytes:
        try:
            return self._obj.flush()
        except zlib.error as exc:
            raise DecodeError(str(exc)) from exc


class _Brotli:
    def __init__(self) -> None:
        try:
            import brotli
        except ImportError as exc:
            raise DecodeError("br encoding needs the 'brotli' package") from exc
        self._obj: Any = brotli.Decompressor()

    def decode(self, data: bytes) -> bytes:
        try:
            result: bytes = self._obj.process(data)
        except Exception as exc:  # brotli.error is not exported consistently
            raise DecodeError(str(exc)) from exc
        return result

    def flush(self) -> bytes:
        return b""


class _Zstd:
    def __init__(self) -> None:
        try:
            import zstandard
        except ImportError as exc:
            raise DecodeError("zstd encoding needs the 'zstandard' package") from exc
        self._obj: Any = zstandard.ZstdDecompressor().decompressobj()
        self._module: Any = zstandard

    def decode(self, data: bytes) -> bytes:
        try:
            result: bytes = self._obj.decompress(data)
        except self._module.ZstdError as exc:
            raise DecodeError(str(exc)) from exc
        return result

    def flush(self) -> bytes:
        return b""


class _Chain:
    """Encodings applied in order are removed in reverse order."""

    def __init__(self, decoders: list[Decoder]) -> None:
        self._decoders = decoders

    def decode(self, data: bytes) -> bytes:
        for decoder in self._decoders:
            data = decoder.decode(data)
        return data

    def flush(self) -> bytes:
        carry = b""
        for decoder in self._decoders:
            carry = (decoder.decode(carry) if carry else b"") + decoder.flush()
        return carry


def make_decoder(content_encoding: str | None) -> Decoder:
    """A decoder for a ``Content-Encoding`` header value (``None`` → identity).

    Raises :class:`DecodeError` for an unknown encoding or a missing optional package.
    """
    names = [
        name.strip().lower()
        for name in (content_encoding or "").split(",")
        if name.strip() and name.strip().lower() != "identity"
    ]
    decoders: list[Decoder] = []
    for name in reversed(names):
        if name in ("gzip", "x-gzip"):
            decoders.append(_Zlib(gzip=True))
        elif name == "deflate":
            decoders.append(_Zlib(gzip=False))
        elif name == "br":
            decoders.append(_Brotli())
        elif name == "zstd":
            decoders.append(_Zstd())
        else:
            raise DecodeError(f"unsupported content encoding {name!r}")
    if not decoders:
        return _Identity()
    if len(decoders) == 1:
        return decoders[0]
    return _Chain(decoders)
