"""The pickle reader builds plain data from the opcode stream and refuses everything else
without calling anything. Expected values come from the standard unpickler run on pickles the
test itself wrote (trusted), or are written out by hand."""

from __future__ import annotations

import os
import pickle
import struct
import subprocess
import sys

import numpy as np
import pytest

from evalgrid.data.pickled import PickleFormatError, read_pickled_data
from fakedata import write_tiny_cifar10


def python2_cifar_batch(data: np.ndarray, labels: list[int]) -> bytes:
    """A batch as Python 2's cPickle (protocol 2) wrote CIFAR: str keys and data as BINSTRING,
    numpy.core names, dtype ('u1', 0, 1); assembled opcode by opcode."""
    def short_string(text: bytes) -> bytes:
        return b"U" + bytes([len(text)]) + text

    raw = data.tobytes()
    dims = b"".join(b"M" + struct.pack("<H", side) for side in data.shape)
    return b"".join([
        b"\x80\x02}q\x01(",
        short_string(b"data"),
        b"cnumpy.core.multiarray\n_reconstruct\nq\x02cnumpy\nndarray\nq\x03K\x00\x85", short_string(b"b"),
        b"\x87R(K\x01", dims, b"\x86cnumpy\ndtype\nq\x04", short_string(b"u1"), b"K\x00K\x01\x87R",
        b"(K\x03", short_string(b"|"), b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb",
        b"\x89T" + struct.pack("<I", len(raw)) + raw, b"tb",
        short_string(b"labels"), b"](", b"".join(b"K" + bytes([label]) for label in labels), b"e",
        short_string(b"batch_label"), short_string(b"training batch 1 of 5"),
        b"u.",
    ])


def test_a_python2_cifar_batch_reads_as_the_standard_unpickler_reads_it():
    data = np.arange(2 * 3072, dtype=np.int64).astype(np.uint8).reshape(2, 3072)
    raw = python2_cifar_batch(data, [3, 7])
    expected = pickle.loads(raw, encoding="bytes")  # trusted: written just above
    got = read_pickled_data(raw)
    assert got.keys() == expected.keys() == {b"data", b"labels", b"batch_label"}
    assert got[b"data"].dtype == np.uint8 and np.array_equal(got[b"data"], data)
    assert np.array_equal(got[b"data"], expected[b"data"])
    assert got[b"labels"] == [3, 7] and got[b"batch_label"] == b"training batch 1 of 5"


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_python3_pickles_of_plain_data_read_as_written(protocol):
    value = {b"data": np.arange(12, dtype=">i4").reshape(3, 4), "floats": np.linspace(0, 1, 5),
             "fortran": np.asfortranarray(np.arange(6, dtype=np.uint16).reshape(2, 3)),
             b"labels": [1, 2, -3, 2**70], "scalar": np.int64(-5), "flag": np.bool_(True),
             "nested": [(1, b"x"), {"k": None}], "empty": np.zeros((0, 3), np.float32)}
    got = read_pickled_data(pickle.dumps(value, protocol=protocol))
    assert got.keys() == value.keys()
    for key in ("data", "floats", "fortran", "empty"):
        key = b"data" if key == "data" else key
        assert got[key].dtype == value[key].dtype and np.array_equal(got[key], value[key])
    assert got["fortran"].flags.f_contiguous
    assert got[b"labels"] == [1, 2, -3, 2**70]
    assert got["scalar"] == -5 and type(got["scalar"]) is int and got["flag"] is True
    assert got["nested"] == [(1, b"x"), {"k": None}]


def test_a_list_that_contains_itself_is_read_without_recursion():
    value = [1]
    value.append(value)
    got = read_pickled_data(pickle.dumps(value, protocol=2))
    assert got[0] == 1 and got[1] is got


class Reduces:
    """Pickles as ``function(*args)`` followed by BUILD(state) when a state is given."""

    def __init__(self, function, args, state=None):
        self.function, self.args, self.state = function, args, state

    def __reduce__(self):
        return (self.function, self.args) if self.state is None else (self.function, self.args, self.state)


def forged_dtype(fields_state):
    return Reduces(np.dtype, ("u1", False, True), fields_state)


# A uint8 dtype whose state smuggles in an object field at offset 0 and the "holds references"
# flag: numpy's own __setstate__ accepts it, the array still compares equal to uint8, and numpy
# then treats pixel bytes as object pointers (increfs and decrefs 0x4141414141414141).
FORGED_STATE = (3, "|", None, ("f",), {"f": (np.dtype("O"), 0)}, 8, 1, 0x01)


RECONSTRUCT = np.zeros(1).__reduce__()[0]  # numpy's _reconstruct, under whichever module name


def array_with_state(shape, dtype, data: bytes):
    return Reduces(RECONSTRUCT, (np.ndarray, (0,), b"b"), (1, shape, dtype, False, data))


def forged_pixels(count: int):
    return array_with_state((count // 3072, 3072), forged_dtype(FORGED_STATE), b"\x41" * count)


REFUSED = {
    "a callable": (Reduces(os.system, ("true",)), "refusing posix.system|refusing nt.system"),
    "builtins.eval": (Reduces(eval, ("1",)), "refusing (__builtin__|builtins).eval"),
    "a forged dtype state": (forged_dtype(FORGED_STATE), "plain number type"),
    "an object dtype": (Reduces(np.dtype, ("O", False, True), (3, "|", None, None, None, -1, -1, 0x3F)),
                        "not a plain number type"),
    "an object array": (np.array([None, 1], dtype=object), "not a plain number type"),
    "a structured array": (np.zeros(2, dtype=[("a", "u1"), ("b", "i4")]), "plain number type|dtype"),
    "a string array": (np.array(["ab", "c"]), "not a plain number type"),
    "short array bytes": (array_with_state((4,), np.dtype("u1"), b"\x00\x00"), "needs 4 bytes, found 2"),
    "a negative shape": (array_with_state((-1,), np.dtype("u1"), b""), "non-negative"),
    "an array without its state": (Reduces(RECONSTRUCT, (np.ndarray, (0,), b"b")), "never given its state"),
    "a set": ({1, 2}, "refusing (__builtin__|builtins).set|EMPTY_SET"),
    "a float": (1.5, "BINFLOAT"),
    "a builtin constructor": (Reduces(dict, ()), "refusing (__builtin__|builtins).dict"),
}


@pytest.mark.parametrize("case", REFUSED)
def test_anything_but_plain_data_is_refused_by_name(case):
    value, message = REFUSED[case]
    with pytest.raises(PickleFormatError, match=message):
        read_pickled_data(pickle.dumps(value, protocol=2))


@pytest.mark.parametrize("raw, message", [
    (b"", "STOP|not a valid pickle"), (b"\x80\x02}q\x01(", "STOP|not a valid pickle"),
    (b"\x80\x02K\x01K\x02.", "2 values"), (b"\x80\x02e.", "MARK"), (b"\x80\x02h\x05.", "never stored"),
    (b"\x80\x02]K\x01K\x02s.", "SETITEM on a list"), (b"\x80\x02}]K\x01s.", "key must be bytes, str or int"),
    (b"\xff", "not a valid pickle"),
])
def test_malformed_streams_are_refused(raw, message):
    with pytest.raises(PickleFormatError, match=message):
        read_pickled_data(raw)


def test_the_forged_pointer_batch_fails_with_exit_code_2_naming_the_file(tmp_path):
    """With the allow-list unpickler this file passed every check (`plan` exited 0) and its pixels
    were object pointers; the variant in issue 15 made `plan` and `run` die of SIGSEGV (rc 139)."""
    write_tiny_cifar10(tmp_path / "data")
    path = tmp_path / "data" / "cifar-10-batches-py" / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": forged_pixels(2 * 3072), b"labels": [0, 1]}, protocol=2))
    grid = tmp_path / "grid.toml"
    grid.write_text(f'name = "forged"\n[data]\nroot = "{tmp_path / "data"}"\n[factors]\ndataset = ["cifar10"]\n'
                    'model = ["lenet"]\nattack = ["dlg"]\nbatch_size = [1]\nseed = [0]\n')
    result = subprocess.run([sys.executable, "-m", "evalgrid", "plan", str(grid), "--check"], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 2, result.stderr
    assert f"{path} is not a valid CIFAR-10 batch" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
