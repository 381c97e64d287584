"""TensorBoard event files of scalars, written in batches by the caller's thread.

``torch.utils.tensorboard.SummaryWriter.add_scalar`` builds a protobuf per value, queues it to a
writer thread that checksums it with a pure-Python CRC32C under the GIL, and costs about 60 µs per
value on a 2-core machine (180 µs per training step for three columns; benchmarks/README.md). This
writer encodes a step's values as one ``Event`` with one ``Summary.Value`` per tag (protobuf wire
format, a few µs per step), checksums a whole batch of records at once with NumPy, and appends them
to the file in one write: the loggers call it when they flush, never per step.

The file is what TensorBoard reads (TFRecord framing: length, masked CRC32C of the length, the
serialized ``Event``, masked CRC32C of the data), the same as SummaryWriter writes, including the
``SessionLog.START`` event at ``purge_step`` that makes TensorBoard drop the older events at and
after a resume point.
"""

from __future__ import annotations

import functools
import itertools
import os
import struct
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

_FILE_VERSION = b"brain.Event:2"
_file_counter = itertools.count()


@functools.cache
def _crc32c_table() -> np.ndarray:
    """CRC32C's (Castagnoli, reflected 0x82F63B78) byte table, built on first use (not at import)."""
    table = np.zeros(256, dtype=np.uint64)
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table[byte] = crc
    return table


def masked_crc32c_rows(data: np.ndarray) -> np.ndarray:
    """The TFRecord masked CRC32C of each row of a 2-D uint8 array (one record per row): one NumPy
    table step per byte column for all records at once, instead of one Python step per byte."""
    table = _crc32c_table()
    crc = np.full(data.shape[0], 0xFFFFFFFF, dtype=np.uint64)
    for column in range(data.shape[1]):
        crc = table[(crc ^ data[:, column]) & 0xFF] ^ (crc >> 8)
    crc ^= 0xFFFFFFFF
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def masked_crc32c_batch(records: Sequence[bytes]) -> list[int]:
    """The TFRecord masked CRC32C of each record (records of one length are checksummed together)."""
    result = [0] * len(records)
    by_length: dict[int, list[int]] = {}
    for index, record in enumerate(records):
        by_length.setdefault(len(record), []).append(index)
    for length, indices in by_length.items():
        data = np.frombuffer(b"".join(records[index] for index in indices), dtype=np.uint8)
        for index, value in zip(indices, masked_crc32c_rows(data.reshape(len(indices), length)).tolist()):
            result[index] = value
    return result


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (wire type 2)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


class EventFileWriter:
    """Appends scalar events to a new ``events.out.tfevents.*`` file under ``log_dir``.

    Args:
        log_dir: the directory (created when missing).
        purge_step: on resume, the first step of the resumed run: TensorBoard then discards the events
            at and after it that an earlier run wrote (0 or None: nothing to purge).
    """

    def __init__(self, log_dir: str | Path, purge_step: int | None = None):
        import socket

        log_dir = Path(log_dir)
        log_dir.mkdir(parents=True, exist_ok=True)
        name = f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}.{os.getpid()}.{next(_file_counter)}"
        self.path = log_dir / name
        self._handle = open(self.path, "ab")
        start = time.time()
        header = [b"\x09" + struct.pack("<d", start) + _field(3, _FILE_VERSION)]
        if purge_step:
            # Event{wall_time, step, session_log: SessionLog{status: START}}, as SummaryWriter(purge_step=...) writes.
            header.append(b"\x09" + struct.pack("<d", start) + b"\x10" + _varint(purge_step) + _field(7, b"\x08\x01"))
        self._write_records(header)

    def add_scalars(self, events: Sequence[tuple[int, float, dict[str, float]]]) -> None:
        """Write ``(step, wall_time, {tag: value})`` events, one Event each.

        Values that are not int or float (per-class lists, None) are left out, as SummaryWriter
        cannot log them as scalars either.
        """
        for step, wall_time, values in events:
            scalars = {
                tag: value
                for tag, value in values.items()
                if isinstance(value, (int, float)) and not isinstance(value, bool)
            }
            if scalars:
                self.add_rows(list(scalars), [step], [wall_time], [list(scalars.values())])

    def add_rows(
        self, tags: Sequence[str], steps: Sequence[int], wall_times: Sequence[float], values: Sequence[Sequence[float]]
    ) -> None:
        """Write one Event per step with a value per tag (``values[i][j]``: step ``i``, tag ``j``), in
        one batch. Values are stored as float32 (TensorBoard's ``simple_value``)."""
        if not len(steps):
            return
        steps_array = np.asarray(steps, dtype=np.uint64)
        wall_array = np.asarray(wall_times, dtype=np.float64)
        values_array = np.asarray(values, dtype=np.float32).reshape(len(steps), len(tags))
        # Bytes of each step's varint: 1 below 2**7, 2 below 2**14, ...
        step_bytes = np.ones(len(steps), dtype=np.int64)
        for power in range(1, 10):
            step_bytes += steps_array >= np.uint64(1 << (7 * power))
        chunks = []
        for length in np.unique(step_bytes).tolist():
            chosen = step_bytes == length
            chunks.append(
                self._encode(tuple(tags), length, steps_array[chosen], wall_array[chosen], values_array[chosen])
            )
        self._handle.write(b"".join(chunks))
        self._handle.flush()

    @staticmethod
    def _encode(
        tags: tuple[str, ...], step_bytes: int, steps: np.ndarray, wall_times: np.ndarray, values: np.ndarray
    ) -> bytes:
        """Framed records of events that share their tags and their step's varint length, built as
        one NumPy structured array: Event{1: wall_time, 2: step, 5: Summary{1: Value{1: tag, 2: value}...}}."""
        value_prefixes = []
        for tag in tags:
            body = _field(1, tag.encode()) + b"\x15"  # Value.tag, then Value.simple_value's key (fixed32)
            value_prefixes.append(_varint(1 << 3 | 2) + _varint(len(body) + 4) + body)
        value_fields = []
        for index, prefix in enumerate(value_prefixes):
            value_fields += [(f"p{index}", f"S{len(prefix)}"), (f"v{index}", "<f4")]
        summary_prefix = b"\x2a" + _varint(sum(len(prefix) + 4 for prefix in value_prefixes))
        event = np.dtype(
            [("wall_key", "u1"), ("wall_time", "<f8"), ("step_key", "u1"), ("step", "u1", (step_bytes,))]
            + [("summary_prefix", f"S{len(summary_prefix)}"), *value_fields]
        )
        count = len(steps)
        data = np.zeros(count, dtype=event)
        data["wall_key"], data["step_key"], data["summary_prefix"] = 0x09, 0x10, summary_prefix
        for byte in range(step_bytes):
            continuation = 0x80 if byte < step_bytes - 1 else 0
            data["step"][:, byte] = ((steps >> np.uint64(7 * byte)) & np.uint64(0x7F)) | np.uint64(continuation)
        data["wall_time"] = wall_times
        for index, prefix in enumerate(value_prefixes):
            data[f"p{index}"] = prefix
            data[f"v{index}"] = values[:, index]
        record = np.dtype(
            [("length", "<u8"), ("length_crc", "<u4"), ("data", "u1", (event.itemsize,)), ("data_crc", "<u4")]
        )
        records = np.zeros(count, dtype=record)
        records["length"] = event.itemsize
        records["length_crc"] = masked_crc32c_batch([struct.pack("<Q", event.itemsize)])[0]
        records["data"] = data.view(np.uint8).reshape(count, event.itemsize)
        records["data_crc"] = masked_crc32c_rows(records["data"])
        return records.tobytes()

    def _write_records(self, records: list[bytes]) -> None:
        if not records:
            return
        headers = [struct.pack("<Q", len(record)) for record in records]
        header_crcs = masked_crc32c_batch(headers)
        data_crcs = masked_crc32c_batch(records)
        self._handle.write(
            b"".join(
                header + struct.pack("<I", header_crc) + record + struct.pack("<I", data_crc)
                for header, header_crc, record, data_crc in zip(headers, header_crcs, records, data_crcs)
            )
        )
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()


class TensorBoardSink:
    """A shared TensorBoard event file under ``<run dir>/tensorboard``, opened by the first logger
    that attaches and closed when the last one detaches. Tags are the CSV column names; the x axis
    is the global step for per-step and per-epoch values alike, so a resume purges later events.

    Loggers hand it whole batches (``add_batch``) when they flush; it encodes and writes them in the
    caller's thread (``callbacks.event_file``), so nothing runs per step and no thread competes
    with the training loop."""

    def __init__(self, log_dir: str | Path):
        self.log_dir = Path(log_dir)
        self._writer: EventFileWriter | None = None
        self._attached = 0

    def attach(self, purge_step: int) -> None:
        if self._writer is None:
            self._writer = EventFileWriter(self.log_dir, purge_step=purge_step or None)
        self._attached += 1

    def add(self, tags: dict[str, float], step: int) -> None:
        """One step's values (non-scalars are left out)."""
        self._writer.add_scalars([(step, time.time(), tags)])

    def add_rows(self, tags: list[str], steps: list[int], wall_times: list[float], values: list[list[float]]) -> None:
        """One event per step with a value per tag (``values[i][j]``: step ``i``, tag ``j``), written together."""
        self._writer.add_rows(tags, steps, wall_times, values)

    def detach(self) -> None:
        self._attached -= 1
        if self._attached == 0 and self._writer is not None:
            self._writer.close()
            self._writer = None
