"""Numeric arrays read from a MATLAB level-5 MAT-file (the format of SVHN's ``*_32x32.mat``)
by a parser of our own, because ``scipy.io.loadmat`` is not safe on untrusted bytes: scipy 1.17
segfaults on a damaged file that our fuzz test (tests/fuzzing.py) produces in a few thousand
mutations.

The format (MathWorks, "MAT-File Format", level 5): a 128-byte header whose last two bytes,
"IM" or "MI", give the byte order; then data elements, each an 8-byte tag (type, byte count)
and its data, padded to 8 bytes. A tag whose upper two bytes are not zero is the "small data
element" form: type and count in 4 bytes, at most 4 data bytes in the next 4. A variable is an
``miMATRIX`` element, or an ``miCOMPRESSED`` element holding one zlib-compressed ``miMATRIX``;
its sub-elements are the array flags (class in the low byte), the dimensions, the name and the
real part, stored column-major in any numeric type, which is converted to the class's type.

Only real numeric arrays are read; cells, structs, objects, sparse and complex arrays are
refused. A variable's dimensions are shown to ``check`` before its data is decompressed, so a
crafted file cannot make the reader allocate more than the caller accepts; variables the caller
does not ask for are skipped without being decompressed.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Callable, Mapping

import numpy as np


class MatFormatError(ValueError):
    """The bytes are not a level-5 MAT-file of numeric arrays; the message says what is wrong."""


HEADER_BYTES = 128
MI_MATRIX, MI_COMPRESSED = 14, 15
# Data types of stored values (miINT8 ... miUINT64) and array classes (mxDOUBLE ... mxUINT64).
MI_TYPES = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 9: "f8", 12: "i8", 13: "u8"}
MX_CLASSES = {6: "f8", 7: "f4", 8: "i1", 9: "u1", 10: "i2", 11: "u2", 12: "i4", 13: "u4", 14: "i8", 15: "u8"}
MX_CLASS_NAMES = {1: "cell", 2: "struct", 3: "object", 4: "char", 5: "sparse"}
COMPLEX_FLAG = 0x0800

ShapeCheck = Callable[[tuple[int, ...]], None]  # raises ValueError when a variable's shape is refused


def read_mat_arrays(raw: bytes, wanted: Mapping[str, ShapeCheck]) -> dict[str, np.ndarray]:
    """The variables named in ``wanted`` that ``raw`` holds, each as an array of its class's type
    and its MATLAB shape; ``wanted[name]`` sees the shape before the data is read."""
    if len(raw) < HEADER_BYTES:
        raise MatFormatError(f"it is {len(raw)} bytes long, shorter than a MAT-file's 128-byte header")
    order = {b"IM": "<", b"MI": ">"}.get(raw[126:128])
    if order is None or not raw.startswith(b"MATLAB 5.0 MAT-file"):
        raise MatFormatError("it does not start with a level-5 MAT-file header (MATLAB 5.0 MAT-file ... IM)")
    found: dict[str, np.ndarray] = {}
    position = HEADER_BYTES
    while position < len(raw):
        if position + 8 > len(raw):
            raise MatFormatError(f"the element tag at byte {position} is cut short")
        first, second = struct.unpack(order + "II", raw[position:position + 8])
        if first >> 16:  # a small data element: nothing a variable can be
            position += 8
            continue
        kind, count, start = first, second, position + 8
        if start + count > len(raw):
            raise MatFormatError(f"the element at byte {position} announces {count} bytes; the file ends first")
        body = memoryview(raw)[start:start + count]
        if kind == MI_COMPRESSED:
            _read_variable(_Inflated(bytes(body), order), wanted, found, compressed=True)
            position = start + count
        else:
            if kind == MI_MATRIX:
                _read_variable(_Elements(body, order), wanted, found, compressed=False)
            position = start + count + _padding(count)  # other elements are not variables: skipped
    return found


def _padding(count: int) -> int:
    return -count % 8


class _Elements:
    """Sequential reads from uncompressed bytes."""

    def __init__(self, view: memoryview, order: str):
        self.view, self.order, self.offset = view, order, 0

    def read(self, count: int) -> bytes:
        if count > len(self.view) - self.offset:
            raise MatFormatError(f"an element needs {count} bytes where {len(self.view) - self.offset} are left")
        data = bytes(self.view[self.offset:self.offset + count])
        self.offset += count
        return data

    def tag(self) -> tuple[int, int]:
        """(type, byte count) of the next element; a small element's data stays to be read
        (4 bytes, of which ``count`` hold data)."""
        first, second = struct.unpack(self.order + "II", self.read(8))
        if first >> 16:  # small data element: type and count share the first word
            self.offset -= 4
            self.small = True
            return first & 0xFFFF, first >> 16
        self.small = False
        return first, second

    def data(self, count: int) -> bytes:
        """The data of the element whose tag was just read, and its padding skipped."""
        if self.small:
            if count > 4:
                raise MatFormatError(f"a small data element announces {count} bytes (at most 4)")
            return self.read(4)[:count]
        data = self.read(count)
        self.read(_padding(count))
        return data


class _Inflated(_Elements):
    """Sequential reads from a zlib-compressed element, inflating only what is read."""

    def __init__(self, compressed: bytes, order: str):
        self.inflater, self.pending, self.order, self.buffer = zlib.decompressobj(), compressed, order, b""

    def read(self, count: int) -> bytes:
        chunks, needed = [self.buffer[:count]], count - len(self.buffer[:count])
        self.buffer = self.buffer[count:]
        while needed:
            try:
                chunk = self.inflater.decompress(self.pending, min(needed, 1 << 24))
            except zlib.error as error:
                raise MatFormatError(f"a compressed variable does not inflate ({error})") from None
            self.pending = self.inflater.unconsumed_tail
            if not chunk:
                raise MatFormatError(f"a compressed variable ends {needed} bytes before its elements do")
            chunks.append(chunk)
            needed -= len(chunk)
        return b"".join(chunks)

    def tag(self) -> tuple[int, int]:
        head = self.read(8)
        first, second = struct.unpack(self.order + "II", head)
        if first >> 16:  # small data element: its 4 data bytes go back to be read by data()
            self.small, self.buffer = True, head[4:] + self.buffer
            return first & 0xFFFF, first >> 16
        self.small = False
        return first, second


def _read_variable(elements: _Elements, wanted: Mapping[str, ShapeCheck], found: dict[str, np.ndarray],
                   compressed: bool) -> None:
    if compressed:
        kind, _ = elements.tag()
        if kind != MI_MATRIX:
            raise MatFormatError(f"a compressed element holds type {kind}, not a matrix (14)")
    flags = np.frombuffer(_sub_element(elements, 6, "array flags", exact=8), dtype=elements.order + "u4")
    mx_class, is_complex = int(flags[0]) & 0xFF, bool(int(flags[0]) & COMPLEX_FLAG)
    dims_bytes = _sub_element(elements, 5, "dimensions")
    if len(dims_bytes) % 4 or len(dims_bytes) < 8:
        raise MatFormatError(f"the dimensions take {len(dims_bytes)} bytes, not 4 per dimension for 2 or more")
    shape = tuple(np.frombuffer(dims_bytes, dtype=elements.order + "i4").tolist())
    name_bytes = _sub_element(elements, 1, "name")
    try:
        name = name_bytes.decode("ascii")
    except UnicodeDecodeError:
        raise MatFormatError(f"a variable's name is not ASCII ({name_bytes[:40]!r})") from None
    if name not in wanted:
        return
    if name in found:
        raise MatFormatError(f"variable {name!r} appears twice")
    if mx_class not in MX_CLASSES:
        raise MatFormatError(f"variable {name!r} is a {MX_CLASS_NAMES.get(mx_class, f'class {mx_class}')} array, "
                             f"not a numeric one")
    if is_complex:
        raise MatFormatError(f"variable {name!r} is complex")
    if any(side < 0 for side in shape):
        raise MatFormatError(f"variable {name!r} has negative dimensions {shape}")
    try:
        wanted[name](shape)
    except ValueError as error:
        raise MatFormatError(f"variable {name!r}: {error}") from None
    kind, count = elements.tag()
    if kind not in MI_TYPES:
        raise MatFormatError(f"variable {name!r} stores its values as type {kind}, not a numeric type")
    stored = np.dtype(elements.order + MI_TYPES[kind])
    if count != math.prod(shape) * stored.itemsize:
        raise MatFormatError(f"variable {name!r} of shape {shape} announces {count} bytes of {stored.name}, "
                             f"not {math.prod(shape) * stored.itemsize}")
    values = np.frombuffer(elements.data(count), dtype=stored).reshape(shape, order="F")
    found[name] = values.astype(MX_CLASSES[mx_class], copy=False)


def _sub_element(elements: _Elements, expected_type: int, what: str, exact: int | None = None) -> bytes:
    kind, count = elements.tag()
    if kind != expected_type or (exact is not None and count != exact):
        raise MatFormatError(f"a matrix's {what} element has type {kind} and {count} bytes, "
                             f"expected type {expected_type}" + (f" and {exact} bytes" if exact else ""))
    if count > 4096:
        raise MatFormatError(f"a matrix's {what} element announces {count} bytes")
    return elements.data(count)
