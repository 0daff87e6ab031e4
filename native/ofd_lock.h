#pragma once
// Byte-range locks owned by an open file description (F_OFD_SETLK): the kernel
// releases them when the last descriptor of that description closes, which a
// process's death does. Several descriptors opened separately in one process
// exclude each other exactly as processes do, and a lock converts atomically
// between shared and exclusive (a refused non-blocking conversion keeps the
// lock held). They never interact with flock(2) locks on the same file.
#include <cstdint>

namespace tidelog {

enum class ofd_lock_kind : short { shared, exclusive, unlock };

/// Sets (or converts, or removes) the lock on [byte, byte + 1) of fd.
/// wait: block until granted. Returns false only when !wait and another
/// description holds a conflicting lock; throws error(io_error) otherwise.
bool ofd_lock(int fd, uint64_t byte, ofd_lock_kind kind, bool wait);

/// Whether another open file description holds a lock on [byte, byte + 1) of
/// fd (F_OFD_GETLK; this description's own locks do not count). When the
/// kernel cannot tell, true: a liveness check then errs towards "alive".
bool ofd_locked_elsewhere(int fd, uint64_t byte);

}  // namespace tidelog
