"""``.npy`` files written front to back and read back a block of rows at a time.

Written through a memory map, every page of the file stays in the process's resident memory (RSS) until the map
is closed: an hour of 128 channels would count gigabytes against the job's memory limit. Plain writes of one
block at a time, and a memory map per block read, keep it to a block. The bytes are those ``np.save`` (or
``np.lib.format.open_memmap``) writes: a version 1.0 header (2.0 when the shape needs it), then the C-order data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _write_header(handle, shape: tuple[int, ...], dtype: np.dtype) -> None:
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": tuple(shape)}
    try:
        np.lib.format.write_array_header_1_0(handle, header)
    except ValueError:  # header longer than version 1.0 allows
        np.lib.format.write_array_header_2_0(handle, header)


class NpyRowWriter:
    """Write an array of ``shape`` as consecutive blocks of its first axis::

        with NpyRowWriter(path, (n_channels, n_samples), np.float32) as out:
            for block in blocks:
                out.write(block)

    Write errors (a full disk) are raised as OSError naming the file. Leaving the ``with`` block before every row
    was written raises, unless an exception is already on its way."""

    def __init__(self, path: Path, shape: tuple[int, ...], dtype) -> None:
        self.path, self.shape, self.dtype = Path(path), tuple(shape), np.dtype(dtype)
        self.rows_written = 0
        self._handle = None

    def __enter__(self) -> "NpyRowWriter":
        self._handle = open(self.path, "wb")
        self._guarded(_write_header, self._handle, self.shape, self.dtype)
        return self

    def write(self, rows: np.ndarray) -> None:
        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        if rows.shape[1:] != self.shape[1:] or self.rows_written + len(rows) > self.shape[0]:
            raise ValueError(f"{self.path}: block of shape {rows.shape} does not fit {self.shape} after "
                             f"{self.rows_written} rows")
        self._guarded(self._handle.write, memoryview(rows).cast("B"))
        self.rows_written += len(rows)

    def _guarded(self, func, *args) -> None:
        try:
            func(*args)
        except OSError as exc:
            if exc.filename is None:  # a failed write() does not say which file
                raise OSError(exc.errno, exc.strerror, str(self.path)) from exc
            raise

    def __exit__(self, exc_type, exc, traceback) -> None:
        handle, self._handle = self._handle, None
        try:
            self._guarded(handle.close)  # buffered bytes are written here: a full disk can show up now
        except OSError:
            if exc_type is None:
                raise
        if exc_type is None and self.rows_written != self.shape[0]:
            raise ValueError(f"{self.path}: {self.rows_written} of {self.shape[0]} rows written")


def read_rows(path: Path, start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop`` of a C-order ``.npy`` as a read-only memory map of just those rows: the caller drops it
    when done, which returns its pages (a map of the whole file would keep every page read in RSS)."""
    with open(path, "rb") as handle:
        version = np.lib.format.read_magic(handle)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, fortran, dtype = read_header(handle)
        offset = handle.tell()
    if fortran:
        raise ValueError(f"{path}: Fortran-ordered arrays are not supported")
    row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
    stop = min(stop, shape[0])
    return np.memmap(path, dtype=dtype, mode="r", offset=offset + start * row_bytes,
                     shape=(stop - start, *shape[1:]))
