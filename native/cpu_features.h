#pragma once
// The CPU features the core picks code paths by, asked of the CPU itself once.
//
// Asked with CPUID (and XGETBV for the registers' state), not with
// __builtin_cpu_supports: that depends on the compiler runtime filling
// __cpu_model, and zig's compiler-rt leaves it empty (every feature reads as
// absent), which would silently put the release wheels on the portable paths.

namespace tidelog {

/// SSE4.2, which brought the crc32 instruction.
bool cpu_has_sse42();
/// AVX2, with the operating system saving the 256-bit registers.
bool cpu_has_avx2();

}  // namespace tidelog
