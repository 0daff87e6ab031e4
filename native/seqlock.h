#pragma once
// A group of fields in shared memory (MAP_SHARED, several processes) written
// by one writer at a time (the holder of the lock that owns the group) and
// read by anyone without a lock: the writer makes `seq` odd, stores the
// fields, makes it even; a reader retries while it is odd or changed.
// A writer that died mid-write leaves `seq` odd: the next writer (the lock's
// next holder) simply writes the group again, which makes it even.
//
// T must be trivially copyable; its fields are copied word by word with
// relaxed atomics (so a torn read is a retry, not undefined behaviour).
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace tidelog {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
}

template <class T>
struct seqlocked {
    static_assert(std::is_trivially_copyable<T>::value && sizeof(T) % 8 == 0, "seqlocked payload");
    uint32_t seq;
    uint32_t padding;
    T value;

    void store(const T& v) {
        uint32_t s = __atomic_load_n(&seq, __ATOMIC_RELAXED);
        uint32_t odd = (s | 1u) + ((s & 1u) ? 2u : 0u);
        __atomic_store_n(&seq, odd, __ATOMIC_RELAXED);
        __atomic_thread_fence(__ATOMIC_RELEASE);
        const uint64_t* from = reinterpret_cast<const uint64_t*>(&v);
        uint64_t* to = reinterpret_cast<uint64_t*>(&value);
        for (size_t i = 0; i < sizeof(T) / 8; ++i) __atomic_store_n(to + i, from[i], __ATOMIC_RELAXED);
        __atomic_store_n(&seq, odd + 1, __ATOMIC_RELEASE);
    }

    /// The writer's own view (it holds the owning lock: no retry needed), or a
    /// repairer's after a death (the fields may be half-written; it decides).
    T load_unlocked() const {
        T v;
        uint64_t* to = reinterpret_cast<uint64_t*>(&v);
        const uint64_t* from = reinterpret_cast<const uint64_t*>(&value);
        for (size_t i = 0; i < sizeof(T) / 8; ++i) to[i] = __atomic_load_n(from + i, __ATOMIC_RELAXED);
        return v;
    }

    /// A consistent copy; false if a writer stayed mid-write for `max_tries`
    /// attempts (it may have died: the caller takes the lock instead).
    bool load(T* out, int max_tries = 10000) const {
        for (int i = 0; i < max_tries; ++i) {
            uint32_t before = __atomic_load_n(&seq, __ATOMIC_ACQUIRE);
            if (before & 1u) {
                cpu_relax();
                continue;
            }
            *out = load_unlocked();
            __atomic_thread_fence(__ATOMIC_ACQUIRE);
            if (__atomic_load_n(&seq, __ATOMIC_RELAXED) == before) return true;
        }
        return false;
    }

    /// Whether a writer is mid-write (or died there).
    bool torn() const { return __atomic_load_n(&seq, __ATOMIC_ACQUIRE) & 1u; }
};

}  // namespace tidelog
