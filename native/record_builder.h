#pragma once
// Accumulates byte records (timestamp, key, value, headers) directly in the
// column layout of tidelog's record schema (docs/FORMAT.md, "Byte records"):
// int32 offsets + data + validity bitmaps, as Arrow lays them out. The Python
// layer wraps these buffers as Arrow arrays without copying, so a batch of
// records becomes one frame with no per-record Python work. The core still
// knows nothing of Arrow: these are plain vectors.
//
// Concurrency: not thread-safe; the producer serializes access to each builder.
#include <cstddef>
#include <cstdint>
#include <vector>

namespace tidelog {

/// A growable byte column: int32 offsets, data, and a validity bitmap that is
/// materialized only once a null appears.
class binary_column {
public:
    binary_column() { _offsets.push_back(0); }
    void add(const uint8_t* data, int64_t length);  // length < 0: null
    size_t count() const { return _offsets.size() - 1; }
    size_t null_count() const { return _nulls; }
    const std::vector<int32_t>& offsets() const { return _offsets; }
    const std::vector<uint8_t>& data() const { return _data; }
    const std::vector<uint8_t>& validity() const { return _validity; }
    void clear();
    /// Room for `rows` more rows and `bytes` more data without regrowing.
    void reserve(size_t rows, size_t bytes);

private:
    std::vector<int32_t> _offsets;
    std::vector<uint8_t> _data;
    std::vector<uint8_t> _validity;
    size_t _nulls = 0;
};

class record_builder {
public:
    record_builder() { _header_offsets.push_back(0); }
    record_builder(const record_builder&) = delete;
    record_builder& operator=(const record_builder&) = delete;

    /// Starts a record; its headers follow with add_header, then nothing else.
    void add(int64_t timestamp, const uint8_t* key, int64_t key_length, const uint8_t* value, int64_t value_length);
    /// A header of the record added last (name UTF-8, value may be null: length < 0).
    void add_header(const uint8_t* name, size_t name_length, const uint8_t* value, int64_t value_length);

    size_t count() const { return _timestamps.size(); }
    /// Bytes of column data so far (what batch_bytes is compared with).
    size_t bytes() const;
    int64_t min_timestamp() const { return _min_ts; }
    int64_t max_timestamp() const { return _max_ts; }

    const std::vector<int64_t>& timestamps() const { return _timestamps; }
    const binary_column& keys() const { return _keys; }
    const binary_column& values() const { return _values; }
    const std::vector<int32_t>& header_offsets() const { return _header_offsets; }
    const binary_column& header_names() const { return _header_names; }
    const binary_column& header_values() const { return _header_values; }
    void clear();
    /// Sizes the columns for about `records` records of `bytes` key+value bytes,
    /// so a batch is not regrown by doubling (the producer passes what the
    /// previous batch of the partition held).
    void reserve(size_t records, size_t bytes);

private:
    std::vector<int64_t> _timestamps;
    binary_column _keys, _values;
    std::vector<int32_t> _header_offsets;  // per record, into header_names/values
    binary_column _header_names, _header_values;
    int64_t _min_ts = INT64_MAX, _max_ts = INT64_MIN;
};

}  // namespace tidelog
