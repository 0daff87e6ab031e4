#pragma once
// Named size and time units, so that constants say what they measure.
#include <time.h>

#include <cstdint>

namespace tidelog {

constexpr uint64_t operator""_KiB(unsigned long long v) { return v << 10; }
constexpr uint64_t operator""_MiB(unsigned long long v) { return v << 20; }
constexpr uint64_t operator""_GiB(unsigned long long v) { return v << 30; }

constexpr int64_t ns_per_ms = 1'000'000;

/// Frames start at multiples of this many bytes in a segment file.
constexpr uint64_t frame_alignment = 8;
/// The first body buffer of an Arrow IPC message is placed at a multiple of this.
constexpr uint64_t body_alignment = 64;
/// Segments grow by fallocate, so that appends write into allocated space
/// (~4.6 GB/s here, writes that extend a file 0.7-1.7 GB/s). A new segment
/// allocates nothing until its first append; then steps start at
/// first_preallocation_bytes and double up to preallocation_step, so an idle
/// or small partition costs little disk (a topic of 5,000 empty partitions
/// costs none).
constexpr uint64_t first_preallocation_bytes = 1_MiB;
constexpr uint64_t preallocation_step = 32_MiB;
/// One sparse index entry per this many bytes of frames (Kafka's default).
constexpr uint64_t index_interval_bytes = 4_KiB;
/// Segment positions are stored as uint32 in the offset index.
constexpr uint64_t max_segment_bytes = 2_GiB - 1;
constexpr uint64_t max_frame_bytes = 2_GiB - 1;

/// CLOCK_MONOTONIC in ns: deadlines and intervals (the committer's gathering,
/// the housekeeper's schedule, waits and segment ages).
inline int64_t monotonic_ns() {
    struct timespec ts;
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1'000'000'000LL + ts.tv_nsec;
}

inline uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

/// How far a file preallocated in steps grows so that it holds `end` bytes: the
/// step is the size already allocated, at least first_step and at most max_step
/// (so it doubles from first_step, then stays at max_step); the new size is
/// `end` rounded up to a multiple of it. Segments and durable-table journals.
inline uint64_t preallocation_target(uint64_t allocated, uint64_t end, uint64_t first_step, uint64_t max_step) {
    uint64_t step = allocated < first_step ? first_step : allocated > max_step ? max_step : allocated;
    return align_up(end, step);
}

}  // namespace tidelog
