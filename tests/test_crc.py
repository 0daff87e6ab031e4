"""CRC-32C: standard vectors, and agreement with two independent implementations."""
from __future__ import annotations

import os
import platform

import crc32c as crc32c_pkg
import google_crc32c
import numpy as np
import pytest

from tidelog import _core

STREAM_BLOCK = 3 * 4096  # the hardware path's three-stream block (12288 bytes)

VECTORS = [
    (b"", 0x00000000),
    (b"123456789", 0xE3069283),
    (bytes(32), 0x8A9136AA),
    (b"\xff" * 32, 0x62A8AB43),
    (bytes(range(32)), 0x46DD794E),
    (bytes(range(31, -1, -1)), 0x113FDB5C),  # RFC 3720 B.4, descending
]


def test_reference_packages_are_real():
    assert google_crc32c.implementation == "c"
    for data, expected in VECTORS:
        assert google_crc32c.value(data) == expected
        assert crc32c_pkg.crc32c(data) == expected


@pytest.mark.parametrize("data,expected", VECTORS)
def test_standard_vectors(data, expected):
    assert _core.crc32c(data) == expected
    assert _core.crc32c_portable(data) == expected


def test_buffer_kinds():
    data = b"123456789"
    assert _core.crc32c(bytearray(data)) == 0xE3069283
    assert _core.crc32c(memoryview(b"__" + data)[2:]) == 0xE3069283
    assert _core.crc32c(np.frombuffer(data, np.uint8)) == 0xE3069283


def _lengths() -> list[int]:
    lengths = set(range(0, 130))
    for k in range(1, 6):
        for d in range(-17, 18):
            lengths.add(k * STREAM_BLOCK + d)
    for p in range(8, 21):
        for d in (-1, 0, 1, 7):
            lengths.add((1 << p) + d)
    rng = np.random.default_rng(11)
    lengths.update(int(x) for x in rng.integers(0, 1 << 20, 40))
    lengths.add(1 << 20)
    return sorted(x for x in lengths if 0 <= x <= 1 << 20)


LENGTHS = _lengths()
RANDOM = np.random.default_rng(12).bytes((1 << 20) + 64)


def test_random_data_against_references():
    view = memoryview(RANDOM)
    for i, n in enumerate(LENGTHS):
        start = i % 8  # misaligned starts too
        chunk = view[start : start + n]
        expected = google_crc32c.value(bytes(chunk))
        assert crc32c_pkg.crc32c(chunk) == expected
        assert _core.crc32c(chunk) == expected, f"length {n}, start {start}"


def test_portable_matches_hardware():
    view = memoryview(RANDOM)
    for i, n in enumerate(LENGTHS[::3]):
        chunk = view[i % 8 : i % 8 + n]
        assert _core.crc32c_portable(chunk) == _core.crc32c(chunk), n
    assert isinstance(_core.crc32c_hardware(), bool)


def _cpu_flags() -> set[str]:
    with open("/proc/cpuinfo", encoding="ascii", errors="replace") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    return set()


@pytest.mark.skipif(platform.machine() != "x86_64" or not os.path.exists("/proc/cpuinfo"), reason="x86-64 Linux only")
def test_hardware_path_used_exactly_when_the_cpu_has_sse42():
    # Whatever compiler built the extension (the wheels use zig, whose
    # __builtin_cpu_supports finds no feature), a CPU with SSE4.2 gets the crc32 path.
    assert _core.crc32c_hardware() == ("sse4_2" in _cpu_flags())


def test_incremental_chaining():
    rng = np.random.default_rng(13)
    data = RANDOM[: 5 * STREAM_BLOCK + 123]
    whole = google_crc32c.value(data)
    for _ in range(30):
        cuts = sorted(int(c) for c in rng.integers(0, len(data), int(rng.integers(1, 6))))
        crc = 0
        crc_portable = 0
        prev = 0
        for c in cuts + [len(data)]:
            crc = _core.crc32c(data[prev:c], crc)
            crc_portable = _core.crc32c_portable(data[prev:c], crc_portable)
            prev = c
        assert crc == whole
        assert crc_portable == whole
    assert _core.crc32c(b"56789", _core.crc32c(b"1234")) == 0xE3069283
    assert _core.crc32c(b"", 0xE3069283) == 0xE3069283
    # chaining agrees with google_crc32c.extend from any starting value
    for seed in (1, 0xFFFFFFFF, 0xDEADBEEF):
        assert _core.crc32c(data[:5000], seed) == google_crc32c.extend(seed, data[:5000])
