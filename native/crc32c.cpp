#include "crc32c.h"

#include "cpu_features.h"

#include <array>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#define TIDELOG_CRC_X86 1
#include <nmmintrin.h>
// The crc32 instruction came with SSE4.2; clang 20+ (zig's C++ compiler) names
// it as a feature of its own, which SSE4.2 does not imply in a target attribute.
// GCC and older clang accept both names.
#define TIDELOG_TARGET_CRC32 __attribute__((target("sse4.2,crc32")))
#endif

namespace tidelog {
namespace {

constexpr uint32_t polynomial = 0x82F63B78u;  // reflected Castagnoli

struct slicing_tables {
    uint32_t t[8][256];
    slicing_tables() {
        for (uint32_t i = 0; i < 256; ++i) {
            uint32_t c = i;
            for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (polynomial & (0u - (c & 1u)));
            t[0][i] = c;
        }
        for (uint32_t i = 0; i < 256; ++i)
            for (int s = 1; s < 8; ++s) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xFF];
    }
};
const slicing_tables& tables() {
    static const slicing_tables instance;
    return instance;
}

// Raw register update (no pre/post inversion), portable.
uint32_t raw_update_portable(uint32_t state, const uint8_t* p, size_t n) {
    const auto& t = tables().t;
    while (n >= 8) {
        uint64_t word;
        std::memcpy(&word, p, 8);
        word ^= state;
        state = t[7][word & 0xFF] ^ t[6][(word >> 8) & 0xFF] ^ t[5][(word >> 16) & 0xFF] ^
                t[4][(word >> 24) & 0xFF] ^ t[3][(word >> 32) & 0xFF] ^ t[2][(word >> 40) & 0xFF] ^
                t[1][(word >> 48) & 0xFF] ^ t[0][word >> 56];
        p += 8;
        n -= 8;
    }
    while (n--) state = (state >> 8) ^ t[0][(state ^ *p++) & 0xFF];
    return state;
}

#ifdef TIDELOG_CRC_X86
// Three independent streams hide the crc32 instruction's 3-cycle latency; the
// partial results are merged by "shifting" a register over stream_bytes zero
// bytes, a linear map precomputed as four 256-entry tables (zlib's crc32_combine
// idea, specialised to one fixed length).
constexpr size_t stream_bytes = 4096;

struct shift_tables {
    uint32_t t[4][256];
    shift_tables() {
        // Column i of the operator is the register after shifting the single bit 1<<i.
        uint32_t columns[32];
        for (int i = 0; i < 32; ++i) {
            uint32_t state = 1u << i;
            for (size_t b = 0; b < stream_bytes; ++b) state = (state >> 8) ^ tables().t[0][state & 0xFF];
            columns[i] = state;
        }
        for (int k = 0; k < 4; ++k)
            for (uint32_t v = 0; v < 256; ++v) {
                uint32_t out = 0;
                for (int bit = 0; bit < 8; ++bit)
                    if (v & (1u << bit)) out ^= columns[k * 8 + bit];
                t[k][v] = out;
            }
    }
    uint32_t shift(uint32_t s) const {
        return t[0][s & 0xFF] ^ t[1][(s >> 8) & 0xFF] ^ t[2][(s >> 16) & 0xFF] ^ t[3][s >> 24];
    }
};
const shift_tables& shifter() {
    static const shift_tables instance;
    return instance;
}

TIDELOG_TARGET_CRC32 uint32_t raw_update_single(uint32_t state, const uint8_t* p, size_t n) {
    uint64_t s = state;
    while (n >= 8) {
        uint64_t word;
        std::memcpy(&word, p, 8);
        s = _mm_crc32_u64(s, word);
        p += 8;
        n -= 8;
    }
    uint32_t s32 = static_cast<uint32_t>(s);
    while (n--) s32 = _mm_crc32_u8(s32, *p++);
    return s32;
}

TIDELOG_TARGET_CRC32 uint32_t raw_update_hardware(uint32_t state, const uint8_t* p, size_t n) {
    const shift_tables& sh = shifter();
    while (n >= 3 * stream_bytes) {
        uint64_t a = state, b = 0, c = 0;
        const uint8_t* pa = p;
        const uint8_t* pb = p + stream_bytes;
        const uint8_t* pc = p + 2 * stream_bytes;
        for (size_t i = 0; i < stream_bytes; i += 8) {
            uint64_t wa, wb, wc;
            std::memcpy(&wa, pa + i, 8);
            std::memcpy(&wb, pb + i, 8);
            std::memcpy(&wc, pc + i, 8);
            a = _mm_crc32_u64(a, wa);
            b = _mm_crc32_u64(b, wb);
            c = _mm_crc32_u64(c, wc);
        }
        state = sh.shift(sh.shift(static_cast<uint32_t>(a)) ^ static_cast<uint32_t>(b)) ^ static_cast<uint32_t>(c);
        p += 3 * stream_bytes;
        n -= 3 * stream_bytes;
    }
    return raw_update_single(state, p, n);
}

#endif

}  // namespace

bool crc32c_hardware_available() {
#ifdef TIDELOG_CRC_X86
    return cpu_has_sse42();
#else
    return false;
#endif
}

uint32_t crc32c_extend_portable(uint32_t crc, const void* data, size_t length) {
    return ~raw_update_portable(~crc, static_cast<const uint8_t*>(data), length);
}

uint32_t crc32c_extend(uint32_t crc, const void* data, size_t length) {
#ifdef TIDELOG_CRC_X86
    if (crc32c_hardware_available())
        return ~raw_update_hardware(~crc, static_cast<const uint8_t*>(data), length);
#endif
    return crc32c_extend_portable(crc, data, length);
}

}  // namespace tidelog
