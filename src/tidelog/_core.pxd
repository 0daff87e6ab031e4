# The .pxd of the module tidelog._core (src/_core.pyx; Cython finds it by the
# module's dotted name, hence this folder). The native error codes are declared
# here, not in tidelog_native.pxd, because Cython turns a `cpdef enum` into a
# Python enum (tidelog._core.ErrorCode) only in the module whose own .pxd
# declares it: tidelog.errors maps these names (never numbers) to exception
# classes, and tests/test_errors.py checks every one has a mapping.

cdef extern from "errors.h" namespace "tidelog":
    cpdef enum class ErrorCode "tidelog::errc"(int):
        io_error
        corrupt
        not_found
        already_exists
        locked
        read_only
        invalid_argument
        closed
        too_large
        interrupted
        conflict
        topic_deleted


# tidelog.Record (src/record_decode.pxi): declared here so that the Kafka
# backend's compiled fast path (src/kafka_fastpath.pyx) builds Records field by
# field, without a Python call per record.
from libc.stdint cimport int64_t

cdef class Record:
    cdef readonly str topic
    cdef readonly int partition
    cdef readonly int64_t offset
    cdef readonly int64_t timestamp
    cdef readonly object key
    cdef readonly object value
    cdef readonly list headers
