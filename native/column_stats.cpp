#include "column_stats.h"

#include <type_traits>

#include "cpu_features.h"

#if defined(__x86_64__) || defined(__i386__)
#define TIDELOG_X86_DISPATCH 1
#define TIDELOG_TARGET_AVX2 __attribute__((target("avx2")))
#include <immintrin.h>
#endif

namespace tidelog {
namespace {

// The loops are written branch-free (selects and ORs) so that the compiler
// vectorizes them; each is compiled twice, for baseline x86-64 and for AVX2.

template <class T>
struct value_range {
    T min;
    T max;
    bool found;  // false: every value was a NaN
    bool nan;
};

template <class T>
inline __attribute__((always_inline)) value_range<T> min_max_loop(const T* v, size_t n) {
    value_range<T> out{T{}, T{}, false, false};
    size_t first = 0;
    if constexpr (std::is_floating_point_v<T>) {
        while (first < n && v[first] != v[first]) ++first;  // a leading NaN must not seed min and max
        out.nan = first > 0;
        if (first == n) return out;
    }
    T lo = v[first], hi = v[first];
    unsigned char nan_seen = 0;
    for (size_t i = first + 1; i < n; ++i) {
        T x = v[i];
        lo = x < lo ? x : lo;  // a NaN never wins a comparison: it takes neither side
        hi = x > hi ? x : hi;
        if constexpr (std::is_floating_point_v<T>) nan_seen |= x != x;
    }
    out.min = lo;
    out.max = hi;
    out.found = true;
    out.nan = out.nan || nan_seen;
    return out;
}

inline __attribute__((always_inline)) bool ordered_loop(const int64_t* v, size_t n) {
    unsigned char descends = 0;
    for (size_t i = 1; i < n; ++i) descends |= v[i] < v[i - 1];
    return !descends;
}

inline __attribute__((always_inline)) int64_span span_loop(const int64_t* v, size_t n) {
    // Timestamps mostly arrive in order: then the ends are the span, and the
    // one pass is the order check.
    if (ordered_loop(v, n)) return {v[0], v[n - 1], true};
    value_range<int64_t> r = min_max_loop(v, n);
    return {r.min, r.max, false};
}

int64_span span_baseline(const int64_t* v, size_t n) { return span_loop(v, n); }
template <class T>
value_range<T> min_max_baseline(const T* v, size_t n) {
    return min_max_loop(v, n);
}

#ifdef TIDELOG_X86_DISPATCH
TIDELOG_TARGET_AVX2 int64_span span_avx2(const int64_t* v, size_t n) { return span_loop(v, n); }

// Floating-point min/max reductions are not vectorized by the compiler without
// -ffast-math (NaN and signed-zero order), so they are written out: vminpd(x, lo)
// returns lo when x is a NaN, exactly the scalar loop's select.
template <class T>
struct float_lanes;
template <>
struct float_lanes<double> {
    using vec = __m256d;
    static constexpr size_t width = 4;
    TIDELOG_TARGET_AVX2 static vec load(const double* p) { return _mm256_loadu_pd(p); }
    TIDELOG_TARGET_AVX2 static vec splat(double x) { return _mm256_set1_pd(x); }
    TIDELOG_TARGET_AVX2 static vec min(vec a, vec b) { return _mm256_min_pd(a, b); }
    TIDELOG_TARGET_AVX2 static vec max(vec a, vec b) { return _mm256_max_pd(a, b); }
    TIDELOG_TARGET_AVX2 static vec unordered(vec a) { return _mm256_cmp_pd(a, a, _CMP_UNORD_Q); }
    TIDELOG_TARGET_AVX2 static vec either(vec a, vec b) { return _mm256_or_pd(a, b); }
    TIDELOG_TARGET_AVX2 static bool any(vec a) { return _mm256_movemask_pd(a) != 0; }
    TIDELOG_TARGET_AVX2 static void store(double* out, vec a) { _mm256_storeu_pd(out, a); }
};
template <>
struct float_lanes<float> {
    using vec = __m256;
    static constexpr size_t width = 8;
    TIDELOG_TARGET_AVX2 static vec load(const float* p) { return _mm256_loadu_ps(p); }
    TIDELOG_TARGET_AVX2 static vec splat(float x) { return _mm256_set1_ps(x); }
    TIDELOG_TARGET_AVX2 static vec min(vec a, vec b) { return _mm256_min_ps(a, b); }
    TIDELOG_TARGET_AVX2 static vec max(vec a, vec b) { return _mm256_max_ps(a, b); }
    TIDELOG_TARGET_AVX2 static vec unordered(vec a) { return _mm256_cmp_ps(a, a, _CMP_UNORD_Q); }
    TIDELOG_TARGET_AVX2 static vec either(vec a, vec b) { return _mm256_or_ps(a, b); }
    TIDELOG_TARGET_AVX2 static bool any(vec a) { return _mm256_movemask_ps(a) != 0; }
    TIDELOG_TARGET_AVX2 static void store(float* out, vec a) { _mm256_storeu_ps(out, a); }
};

template <class T>
TIDELOG_TARGET_AVX2 value_range<T> min_max_avx2(const T* v, size_t n) {
    if constexpr (std::is_floating_point_v<T>) {
        using L = float_lanes<T>;
        size_t first = 0;
        while (first < n && v[first] != v[first]) ++first;
        if (n - first < 4 * L::width) return min_max_loop(v, n);
        typename L::vec lo = L::splat(v[first]), hi = lo, nan = L::unordered(lo);
        size_t i = first;
        for (; i + L::width <= n; i += L::width) {
            typename L::vec x = L::load(v + i);
            lo = L::min(x, lo);
            hi = L::max(x, hi);
            nan = L::either(nan, L::unordered(x));
        }
        T lanes_lo[L::width], lanes_hi[L::width];
        L::store(lanes_lo, lo);
        L::store(lanes_hi, hi);
        value_range<T> out{lanes_lo[0], lanes_hi[0], true, first > 0 || L::any(nan)};
        for (size_t k = 1; k < L::width; ++k) {
            out.min = lanes_lo[k] < out.min ? lanes_lo[k] : out.min;
            out.max = lanes_hi[k] > out.max ? lanes_hi[k] : out.max;
        }
        for (; i < n; ++i) {
            T x = v[i];
            out.min = x < out.min ? x : out.min;
            out.max = x > out.max ? x : out.max;
            out.nan = out.nan || x != x;
        }
        return out;
    } else {
        return min_max_loop(v, n);
    }
}
#endif

}  // namespace

int64_span int64_span_of(const int64_t* values, size_t count) {
#ifdef TIDELOG_X86_DISPATCH
    if (cpu_has_avx2()) return span_avx2(values, count);
#endif
    return span_baseline(values, count);
}

template <class T>
bool min_max_of(const T* values, size_t count, T* min, T* max, bool* nan) {
    value_range<T> r;
#ifdef TIDELOG_X86_DISPATCH
    if (cpu_has_avx2())
        r = min_max_avx2(values, count);
    else
#endif
        r = min_max_baseline(values, count);
    *nan = r.nan;
    if (r.found) {
        *min = r.min;
        *max = r.max;
    }
    return r.found;
}

#define TIDELOG_MIN_MAX_OF(T) template bool min_max_of(const T*, size_t, T*, T*, bool*);
TIDELOG_MIN_MAX_OF(int8_t)
TIDELOG_MIN_MAX_OF(int16_t)
TIDELOG_MIN_MAX_OF(int32_t)
TIDELOG_MIN_MAX_OF(int64_t)
TIDELOG_MIN_MAX_OF(uint8_t)
TIDELOG_MIN_MAX_OF(uint16_t)
TIDELOG_MIN_MAX_OF(uint32_t)
TIDELOG_MIN_MAX_OF(uint64_t)
TIDELOG_MIN_MAX_OF(float)
TIDELOG_MIN_MAX_OF(double)
#undef TIDELOG_MIN_MAX_OF

}  // namespace tidelog
