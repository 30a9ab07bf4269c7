"""Plain data read from a pickle without unpickling it: the opcode stream is parsed here and
only the structure that dataset files such as CIFAR's batches use is accepted.

Unpickling asks the named globals to rebuild objects from their pickled state. An allow-list
of names does not make that safe: ``numpy.dtype.__setstate__`` alone can forge a dtype whose
hidden object field makes numpy dereference an attacker-chosen pointer. So no global is ever
called here. The stream is walked with :func:`pickletools.genops`, values are built by this
module, and numpy arrays are made with :func:`numpy.frombuffer` from an explicit dtype that
this module constructs from a checked type string.

Accepted values: dicts (keys bytes, str or int), lists, tuples, bytes, str, ints, bools,
None, and numpy arrays and scalars of plain numbers (bool, signed and unsigned integers,
floats), in the forms numpy pickles them at protocols 2 to 5 (``_reconstruct`` plus the
array's state, ``scalar``, ``_frombuffer``) and Python 3 writes bytes at protocol 2
(``_codecs.encode(str, 'latin1')``; ``bytes()`` when empty). Python 2 strings become bytes,
as ``encoding='bytes'`` makes them. Anything else is a :class:`PickleFormatError` that names what was refused.
"""

from __future__ import annotations

import math
import pickletools
import re
from dataclasses import dataclass
from typing import Any

import numpy as np


class PickleFormatError(ValueError):
    """The stream is not a pickle of plain data; the message says what was refused."""


# The globals that plain numpy data names, by the role each plays; none is ever imported.
_GLOBALS = {
    ("numpy", "ndarray"): "ndarray",
    ("numpy", "dtype"): "dtype",
    ("numpy.core.multiarray", "_reconstruct"): "reconstruct",
    ("numpy._core.multiarray", "_reconstruct"): "reconstruct",
    ("numpy.core.multiarray", "scalar"): "scalar",
    ("numpy._core.multiarray", "scalar"): "scalar",
    ("numpy.core.numeric", "_frombuffer"): "frombuffer",
    ("numpy._core.numeric", "_frombuffer"): "frombuffer",
    ("_codecs", "encode"): "encode",
    ("__builtin__", "bytes"): "empty_bytes", ("builtins", "bytes"): "empty_bytes",
}
# Plain number types: bool, signed and unsigned integers, floats (numpy's type strings).
_TYPESTR = re.compile(r"(b1|[iu](1|2|4|8)|f(2|4|8))")
# A plain dtype's pickled state: (version 3, byte order, no subarray, no names, no fields,
# elsize -1, alignment -1, no flags). Anything else (fields, object flags, metadata) is refused.
_PLAIN_DTYPE_STATE_TAIL = (None, None, None, -1, -1, 0)


@dataclass(frozen=True)
class _Global:
    role: str


@dataclass
class _PendingDType:
    """``numpy.dtype(typestr, ...)`` before its BUILD gives the byte order."""

    typestr: str
    dtype: np.dtype | None = None


@dataclass
class _PendingArray:
    """``_reconstruct(ndarray, (0,), b'b')`` before its BUILD gives shape, dtype and bytes."""

    array: np.ndarray | None = None


_MARK = object()


def read_pickled_data(raw: bytes) -> Any:
    """The plain value pickled in ``raw``; raises :class:`PickleFormatError` for anything else
    (including a stream that :mod:`pickletools` cannot decode)."""
    stack: list[Any] = []
    memo: dict[int, Any] = {}
    try:
        for opcode, arg, _ in pickletools.genops(raw):
            if opcode.name == "STOP":
                return _finish(stack)
            _apply(opcode.name, arg, stack, memo)
    except PickleFormatError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, OverflowError, UnicodeError, EOFError) as error:
        raise PickleFormatError(f"not a valid pickle ({type(error).__name__}: {error})") from None
    raise PickleFormatError("the pickle has no STOP opcode (truncated?)")


def _finish(stack: list[Any]) -> Any:
    if len(stack) != 1 or stack[0] is _MARK:
        raise PickleFormatError(f"the pickle ends with {len(stack)} values on its stack, not one")
    return _resolve(stack[0])


def _apply(name: str, arg: Any, stack: list[Any], memo: dict[int, Any]) -> None:
    if name in ("PROTO", "FRAME"):
        return
    if name in _PUSH_ARG:
        stack.append(_PUSH_ARG[name](arg))
    elif name in _PUSH_CONSTANT:
        stack.append(_PUSH_CONSTANT[name]())
    elif name == "MARK":
        stack.append(_MARK)
    elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
        memo[arg] = _top(stack)
    elif name == "MEMOIZE":
        memo[len(memo)] = _top(stack)
    elif name in ("GET", "BINGET", "LONG_BINGET"):
        if arg not in memo:
            raise PickleFormatError(f"{name} of memo entry {arg}, which was never stored")
        stack.append(memo[arg])
    elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
        count = int(name[-1])
        items = [_pop(stack) for _ in range(count)][::-1]
        stack.append(tuple(items))
    elif name == "TUPLE":
        stack.append(tuple(_pop_to_mark(stack)))
    elif name == "LIST":
        stack.append(list(_pop_to_mark(stack)))
    elif name == "DICT":
        stack.append(_set_items({}, _pop_to_mark(stack)))
    elif name == "APPEND":
        item = _pop(stack)
        _list_on_top(stack, name).append(item)
    elif name == "APPENDS":
        items = _pop_to_mark(stack)
        _list_on_top(stack, name).extend(items)
    elif name == "SETITEM":
        value, key = _pop(stack), _pop(stack)
        _set_items(_dict_on_top(stack, name), [key, value])
    elif name == "SETITEMS":
        items = _pop_to_mark(stack)
        _set_items(_dict_on_top(stack, name), items)
    elif name in ("GLOBAL", "STACK_GLOBAL"):
        stack.append(_global(arg, stack) if name == "GLOBAL" else _stack_global(stack))
    elif name == "REDUCE":
        args, function = _pop(stack), _pop(stack)
        stack.append(_reduce(function, args))
    elif name == "BUILD":
        state = _pop(stack)
        _build(_top(stack), state)
    else:
        raise PickleFormatError(f"opcode {name} is not part of plain data")


def _latin1_bytes(text: str) -> bytes:
    return text.encode("latin-1")


_PUSH_ARG = {
    # integers
    "INT": lambda arg: arg, "BININT": lambda arg: arg, "BININT1": lambda arg: arg, "BININT2": lambda arg: arg,
    "LONG": lambda arg: arg, "LONG1": lambda arg: arg, "LONG4": lambda arg: arg,
    # bytes (Python 2 strings are read as bytes, as encoding='bytes' does)
    "STRING": _latin1_bytes, "BINSTRING": _latin1_bytes, "SHORT_BINSTRING": _latin1_bytes,
    "BINBYTES": bytes, "SHORT_BINBYTES": bytes, "BINBYTES8": bytes, "BYTEARRAY8": bytes,
    # text
    "UNICODE": str, "BINUNICODE": str, "SHORT_BINUNICODE": str, "BINUNICODE8": str,
}
_PUSH_CONSTANT = {
    "NONE": lambda: None, "NEWTRUE": lambda: True, "NEWFALSE": lambda: False,
    "EMPTY_DICT": dict, "EMPTY_LIST": list, "EMPTY_TUPLE": tuple,
}


def _top(stack: list[Any]) -> Any:
    if not stack or stack[-1] is _MARK:
        raise PickleFormatError("an opcode needs a value and the stack has none")
    return stack[-1]


def _pop(stack: list[Any]) -> Any:
    value = _top(stack)
    stack.pop()
    return value


def _pop_to_mark(stack: list[Any]) -> list[Any]:
    for index in range(len(stack) - 1, -1, -1):
        if stack[index] is _MARK:
            items = stack[index + 1:]
            del stack[index:]
            return items
    raise PickleFormatError("an opcode needs a MARK and the stack has none")


def _list_on_top(stack: list[Any], name: str) -> list:
    target = _top(stack)
    if not isinstance(target, list):
        raise PickleFormatError(f"{name} on a {type(target).__name__}, not a list")
    return target


def _dict_on_top(stack: list[Any], name: str) -> dict:
    target = _top(stack)
    if not isinstance(target, dict):
        raise PickleFormatError(f"{name} on a {type(target).__name__}, not a dict")
    return target


def _set_items(target: dict, items: list[Any]) -> dict:
    if len(items) % 2:
        raise PickleFormatError("a dict's items come in key, value pairs; one is missing")
    for key, value in zip(items[::2], items[1::2]):
        if type(key) not in (bytes, str, int):
            raise PickleFormatError(f"a dict key must be bytes, str or int, not {type(key).__name__}")
        target[key] = value
    return target


def _global(arg: str, stack: list[Any]) -> _Global:
    module, _, name = arg.partition(" ")
    return _named_global(module, name)


def _stack_global(stack: list[Any]) -> _Global:
    name, module = _pop(stack), _pop(stack)
    if not (isinstance(module, str) and isinstance(name, str)):
        raise PickleFormatError("STACK_GLOBAL needs a module and a name as text")
    return _named_global(module, name)


def _named_global(module: str, name: str) -> _Global:
    role = _GLOBALS.get((module, name))
    if role is None:
        raise PickleFormatError(f"refusing {module}.{name}: plain data names no other global")
    return _Global(role)


def _reduce(function: Any, args: Any) -> Any:
    if not (isinstance(function, _Global) and isinstance(args, tuple)):
        raise PickleFormatError("REDUCE of something other than an accepted global")
    return _REDUCERS[function.role](args)


def _reduce_encode(args: tuple) -> bytes:
    if not (len(args) == 2 and isinstance(args[0], str) and args[1] in ("latin1", "latin-1")):
        raise PickleFormatError("_codecs.encode is accepted only as (text, 'latin1'), how bytes are pickled")
    return args[0].encode("latin-1")


def _reduce_dtype(args: tuple) -> _PendingDType:
    if not (len(args) == 3 and isinstance(args[0], (str, bytes))):
        raise PickleFormatError("numpy.dtype is accepted only as (type string, align, copy)")
    typestr = args[0].decode("ascii") if isinstance(args[0], bytes) else args[0]
    if not _TYPESTR.fullmatch(typestr):
        raise PickleFormatError(f"dtype {typestr!r} is not a plain number type (bool, int, uint, float)")
    return _PendingDType(typestr)


def _reduce_reconstruct(args: tuple) -> _PendingArray:
    if not (len(args) == 3 and args[0] == _Global("ndarray") and args[1] == (0,) and args[2] in (b"b", "b")):
        raise PickleFormatError("_reconstruct is accepted only as (ndarray, (0,), b'b'), how arrays are pickled")
    return _PendingArray()


def _reduce_scalar(args: tuple) -> int | float | bool:
    if not (len(args) == 2 and isinstance(args[1], bytes)):
        raise PickleFormatError("numpy scalar is accepted only as (dtype, bytes)")
    dtype = _built_dtype(args[0])
    if len(args[1]) != dtype.itemsize:
        raise PickleFormatError(f"a {dtype} scalar needs {dtype.itemsize} bytes, found {len(args[1])}")
    return np.frombuffer(args[1], dtype=dtype)[0].item()


def _reduce_frombuffer(args: tuple) -> np.ndarray:
    if not (len(args) == 4 and isinstance(args[0], bytes) and args[3] in ("C", "F")):
        raise PickleFormatError("_frombuffer is accepted only as (bytes, dtype, shape, 'C' or 'F')")
    return _array(args[0], _built_dtype(args[1]), args[2], fortran=args[3] == "F")


def _reduce_empty_bytes(args: tuple) -> bytes:
    if args != ():
        raise PickleFormatError("bytes(...) is accepted only without arguments, how empty bytes are pickled")
    return b""


_REDUCERS = {"encode": _reduce_encode, "empty_bytes": _reduce_empty_bytes, "dtype": _reduce_dtype,
             "reconstruct": _reduce_reconstruct,
             "scalar": _reduce_scalar, "frombuffer": _reduce_frombuffer,
             "ndarray": lambda args: _refuse("numpy.ndarray(...) is not how arrays are pickled")}


def _refuse(reason: str):
    raise PickleFormatError(reason)


def _build(target: Any, state: Any) -> None:
    if isinstance(target, _PendingDType) and target.dtype is None:
        target.dtype = _plain_dtype(target.typestr, state)
    elif isinstance(target, _PendingArray) and target.array is None:
        target.array = _array_from_state(state)
    else:
        raise PickleFormatError(f"BUILD on a {type(target).__name__}: only numpy arrays and dtypes take a state")


def _plain_dtype(typestr: str, state: Any) -> np.dtype:
    if not (isinstance(state, tuple) and len(state) == 8 and state[0] == 3
            and state[1] in ("|", "<", ">", "=", b"|", b"<", b">", b"=") and state[2:] == _PLAIN_DTYPE_STATE_TAIL):
        raise PickleFormatError("a dtype's state must be that of a plain number type "
                                "(no fields, subarrays, object flags or metadata)")
    order = state[1].decode("ascii") if isinstance(state[1], bytes) else state[1]
    if order == "|" and typestr[-1] != "1" and typestr != "b1":
        raise PickleFormatError(f"dtype {typestr!r} needs a byte order, found '|'")
    return np.dtype(typestr if order == "|" else order + typestr)


def _built_dtype(value: Any) -> np.dtype:
    if not (isinstance(value, _PendingDType) and value.dtype is not None):
        raise PickleFormatError("expected a numpy dtype with its state")
    return value.dtype


def _array_from_state(state: Any) -> np.ndarray:
    if not (isinstance(state, tuple) and len(state) == 5 and state[0] == 1 and state[3] in (False, True)
            and isinstance(state[4], bytes)):
        raise PickleFormatError("an array's state must be (1, shape, dtype, fortran order, bytes); "
                                "arrays of Python objects are refused")
    return _array(state[4], _built_dtype(state[2]), state[1], fortran=bool(state[3]))


def _array(data: bytes, dtype: np.dtype, shape: Any, fortran: bool) -> np.ndarray:
    if not (isinstance(shape, tuple) and all(type(side) is int and side >= 0 for side in shape)):
        raise PickleFormatError(f"an array's shape must be a tuple of non-negative ints, found {shape!r}")
    count = math.prod(shape)
    if count * dtype.itemsize != len(data):
        raise PickleFormatError(f"an array of shape {shape} and dtype {dtype} needs {count * dtype.itemsize} "
                                f"bytes, found {len(data)}")
    return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")


def _resolve(root: Any) -> Any:
    """``root`` with every array that was built in place of its placeholder, walked without
    recursion (the memo can make lists contain themselves); a dtype, a global or an array left
    without its state anywhere in it is refused."""
    root = _leaf(root)
    pending, seen = [root], set()
    while pending:
        container = pending.pop()
        if not isinstance(container, (list, dict, tuple)) or id(container) in seen:
            continue
        seen.add(id(container))
        if isinstance(container, tuple):
            if any(isinstance(item, _PendingArray) for item in container):
                raise PickleFormatError("arrays inside tuples are not plain data here")
            items = [_leaf(item) for item in container]
        elif isinstance(container, list):
            container[:] = items = [_leaf(item) for item in container]
        else:
            for key in container:
                container[key] = _leaf(container[key])
            items = list(container.values())
        pending.extend(items)
    return root


def _leaf(value: Any) -> Any:
    if isinstance(value, _PendingArray):
        if value.array is None:
            raise PickleFormatError("an array was never given its state")
        return value.array
    if isinstance(value, (_PendingDType, _Global)):
        raise PickleFormatError("a bare dtype or global is not data")
    return value
