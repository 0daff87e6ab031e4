#pragma once
// One pass over a column's values, at every append: the timestamp column's
// span (and whether it never decreases) for the frame header, and each numeric
// column's min and max for the zone map (FORMAT.md §15).
//
// Vectorized for AVX2 when the CPU has it (chosen at run time; the build
// targets baseline x86-64, where 64-bit compares and 32-bit min/max do not
// vectorize): a 64 Ki-row batch's three columns took 90 us of scalar passes and
// numpy's separate min and max, the largest cost of a not-durable append after
// the page-cache copy itself.
//
// Thread-safe: pure functions of their arguments.
#include <cstddef>
#include <cstdint>

namespace tidelog {

struct int64_span {
    int64_t min;
    int64_t max;
    bool ordered;  // every value >= the one before it
};

/// The span of ``count`` >= 1 int64 values (no nulls).
int64_span int64_span_of(const int64_t* values, size_t count);

/// Min and max of ``count`` >= 1 values (no nulls) into ``*min`` and ``*max``;
/// a floating-point NaN takes part in neither and sets ``*nan``. Returns false
/// (``*min``, ``*max`` untouched) when every value is a NaN. Instantiated for
/// the 8-, 16-, 32- and 64-bit integers, float and double.
template <class T>
bool min_max_of(const T* values, size_t count, T* min, T* max, bool* nan);

}  // namespace tidelog
