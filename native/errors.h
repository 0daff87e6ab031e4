#pragma once
// The one error type of the native core. Every failure carries an errc; the
// Cython layer exposes the errc names (src/tidelog/_core.pxd: ErrorCode) and
// tidelog/errors.py maps each name to one Python exception class
// (src/error_bridge.h: raise_native_error). A new errc needs a Python mapping:
// tests/test_errors.py fails until it has one.
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>

namespace tidelog {

enum class errc : int {
    io_error = 1,       // a system call failed; message holds strerror
    corrupt = 2,        // bytes on disk fail validation (CRC, lengths, magic)
    not_found = 3,      // a file or topic that must exist does not
    already_exists = 4,
    locked = 5,         // another process holds the writer lock
    read_only = 6,      // a write through a read-only handle
    invalid_argument = 7,
    closed = 8,         // use after close
    too_large = 9,      // a frame or record over a configured limit
    interrupted = 10,   // a wait ended because its caller asked (a signal in Python)
    conflict = 11,      // an optimistic-concurrency check failed (an expected version was taken)
    topic_deleted = 12, // the partition's topic was deleted (by any handle) while this one had it open
};

/// Where damaged data lies, for an errc::corrupt error a read raises: Python
/// gets these as CorruptionError fields, not parsed out of the message.
struct damage_place {
    std::string topic;          // the topic's folder name
    int partition = -1;         // -1: the partition folder name is not a number
    std::string segment;        // path of the segment file
    uint64_t position = 0;      // byte position of the damage in it
    int64_t start_offset = 0;   // offsets the damage held: [start_offset, end_offset)
    int64_t end_offset = 0;
};

class error : public std::runtime_error {
public:
    error(errc code, const std::string& message) : std::runtime_error(message), _code(code) {}
    error(errc code, const std::string& message, damage_place place)
        : std::runtime_error(message), _code(code), _place(std::make_shared<const damage_place>(std::move(place))) {}
    errc code() const noexcept { return _code; }
    /// The damage's place, or nullptr when the error is not about a place in a segment.
    const damage_place* place() const noexcept { return _place.get(); }

private:
    errc _code;
    // Shared, so copying the exception (as throw and catch may) cannot throw.
    std::shared_ptr<const damage_place> _place;
};

[[noreturn]] inline void throw_errno(const std::string& what, int err = errno) {
    throw error(errc::io_error, what + ": " + std::strerror(err));
}

}  // namespace tidelog
