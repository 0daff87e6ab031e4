#include "column_stats.h"
#include "cpu_features.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <string>
#include <limits>
#include <random>
#include <vector>

namespace tidelog {
namespace {

// The scalar definition the vectorized passes must agree with.
template <class T>
bool reference_min_max(const std::vector<T>& v, T* lo, T* hi, bool* nan) {
    bool found = false;
    *nan = false;
    for (T x : v) {
        if (x != x) {
            *nan = true;
            continue;
        }
        if (!found) {
            *lo = *hi = x;
            found = true;
        } else {
            if (x < *lo) *lo = x;
            if (x > *hi) *hi = x;
        }
    }
    return found;
}

template <class T>
void check_lengths_and_nans() {
    std::mt19937_64 rng(7);
    for (size_t n : {1, 2, 3, 7, 8, 9, 31, 32, 33, 100, 1000, 4097}) {
        for (int nan_at : {-1, 0, 1, static_cast<int>(n / 2), static_cast<int>(n) - 1}) {
            std::vector<T> v(n);
            for (auto& x : v) x = static_cast<T>(rng());
            if (nan_at >= 0 && nan_at < static_cast<int>(n)) {
                if constexpr (std::is_floating_point_v<T>) v[nan_at] = std::numeric_limits<T>::quiet_NaN();
                else continue;
            }
            T lo{}, hi{}, want_lo{}, want_hi{};
            bool nan = false, want_nan = false;
            bool found = min_max_of(v.data(), v.size(), &lo, &hi, &nan);
            bool want = reference_min_max(v, &want_lo, &want_hi, &want_nan);
            ASSERT_EQ(found, want) << n;
            ASSERT_EQ(nan, want_nan) << n << " " << nan_at;
            if (want) {
                ASSERT_EQ(lo, want_lo) << n << " " << nan_at;
                ASSERT_EQ(hi, want_hi) << n << " " << nan_at;
            }
        }
    }
}

TEST(ColumnStats, MinMaxOfEveryWidthAgreesWithTheScalarPass) {
    check_lengths_and_nans<int8_t>();
    check_lengths_and_nans<int16_t>();
    check_lengths_and_nans<int32_t>();
    check_lengths_and_nans<int64_t>();
    check_lengths_and_nans<uint8_t>();
    check_lengths_and_nans<uint16_t>();
    check_lengths_and_nans<uint32_t>();
    check_lengths_and_nans<uint64_t>();
    check_lengths_and_nans<float>();
    check_lengths_and_nans<double>();
}

TEST(ColumnStats, AllNansFindNothing) {
    std::vector<double> v(40, std::numeric_limits<double>::quiet_NaN());
    double lo = 1, hi = 2;
    bool nan = false;
    EXPECT_FALSE(min_max_of(v.data(), v.size(), &lo, &hi, &nan));
    EXPECT_TRUE(nan);
    EXPECT_EQ(lo, 1);  // untouched
    EXPECT_EQ(hi, 2);
}

TEST(ColumnStats, TimestampSpanSeesOneStepDownAnywhere) {
    for (size_t n : {1, 2, 5, 8, 33, 4096, 4099}) {
        std::vector<int64_t> v(n);
        for (size_t i = 0; i < n; ++i) v[i] = static_cast<int64_t>(i / 3) * 1000 - 5000;  // ties included
        int64_span s = int64_span_of(v.data(), n);
        EXPECT_TRUE(s.ordered);
        EXPECT_EQ(s.min, v.front());
        EXPECT_EQ(s.max, v.back());
        for (size_t at = 1; at < n; at += (n > 40 ? n / 7 : 1)) {
            std::vector<int64_t> w = v;
            w[at] = w[at - 1] - 1;
            int64_span t = int64_span_of(w.data(), n);
            EXPECT_FALSE(t.ordered) << n << " " << at;
            EXPECT_EQ(t.min, *std::min_element(w.begin(), w.end()));
            EXPECT_EQ(t.max, *std::max_element(w.begin(), w.end()));
        }
    }
    std::vector<int64_t> extremes{std::numeric_limits<int64_t>::min(), 0, std::numeric_limits<int64_t>::max()};
    int64_span e = int64_span_of(extremes.data(), extremes.size());
    EXPECT_TRUE(e.ordered);
    EXPECT_EQ(e.min, std::numeric_limits<int64_t>::min());
    EXPECT_EQ(e.max, std::numeric_limits<int64_t>::max());
}

// CPUID must agree with the kernel's view: zig's runtime once reported no
// features at all, which would silently put the release wheels on the scalar passes.
TEST(ColumnStats, Avx2DetectionAgreesWithProcCpuinfo) {
    std::ifstream cpuinfo("/proc/cpuinfo");
    if (!cpuinfo) GTEST_SKIP() << "no /proc/cpuinfo";
    std::string line;
    bool avx2 = false;
    while (std::getline(cpuinfo, line))
        if (line.rfind("flags", 0) == 0) {
            avx2 = (line + " ").find(" avx2 ") != std::string::npos;
            break;
        }
    EXPECT_EQ(cpu_has_avx2(), avx2);
}

}  // namespace
}  // namespace tidelog
