#pragma once
// 128-bit key identities for the log cleaner's dedupe map (Kafka hashes keys
// with MD5 for the same purpose): MurmurHash3 x64_128 (Austin Appleby's public
// algorithm) of the key's bytes. 128 bits make a collision - which would let
// one key's record stand in for another's latest value - negligible (p ~ n^2 /
// 2^129: below 1e-26 for 10^8 keys), where 64 bits would not be.
//
// The bytes hashed are the column's own: fixed-width values as stored
// (little-endian), strings and binaries as their bytes. Keys of one topic
// always have one type, so equal keys hash equally; the hash is not meant to
// match anything outside the cleaner. Pure functions: thread-safe.
#include <cstddef>
#include <cstdint>

namespace tidelog {

struct key_hash {
    uint64_t lo;
    uint64_t hi;
    bool operator==(const key_hash& o) const { return lo == o.lo && hi == o.hi; }
};

key_hash murmur3_128(const void* data, size_t length, uint64_t seed = 0);

/// One hash per value of `count` fixed-width values of `width` bytes.
void hash_fixed_width_keys(const uint8_t* values, size_t count, size_t width, key_hash* out);
/// One hash per value of an Arrow binary/string column given its offsets
/// (already shifted to the array's offset: count + 1 of them) and data.
void hash_binary32_keys(const int32_t* offsets, const uint8_t* data, size_t count, key_hash* out);
void hash_binary64_keys(const int64_t* offsets, const uint8_t* data, size_t count, key_hash* out);

}  // namespace tidelog
