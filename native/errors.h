#pragma once
// The one error type of the native core. Every failure carries an errc that the
// Cython layer maps to one Python exception class (src/_core.pyx: raise_native_error).
#include <cerrno>
#include <cstring>
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
};

class error : public std::runtime_error {
public:
    error(errc code, const std::string& message) : std::runtime_error(message), _code(code) {}
    errc code() const noexcept { return _code; }

private:
    errc _code;
};

[[noreturn]] inline void throw_errno(const std::string& what, int err = errno) {
    throw error(errc::io_error, what + ": " + std::strerror(err));
}

}  // namespace tidelog
