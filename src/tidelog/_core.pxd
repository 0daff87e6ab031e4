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
