#include "record_builder.h"

#include <algorithm>
#include <cstring>

#include "errors.h"

namespace tidelog {

void binary_column::add(const uint8_t* data, int64_t length) {
    size_t row = count();
    if (length < 0) {
        if (_validity.empty()) _validity.assign((row + 8) / 8 + 1, 0xFF);  // all earlier rows valid
        ++_nulls;
    } else {
        if (_data.size() + static_cast<uint64_t>(length) > INT32_MAX)
            throw error(errc::too_large, "a record batch column would pass 2 GiB");
        _data.insert(_data.end(), data, data + length);
    }
    if (!_validity.empty()) {
        if (_validity.size() <= row / 8) _validity.resize(row / 8 + 1, 0xFF);
        uint8_t bit = static_cast<uint8_t>(1u << (row % 8));
        if (length < 0)
            _validity[row / 8] &= static_cast<uint8_t>(~bit);
        else
            _validity[row / 8] |= bit;
    }
    _offsets.push_back(static_cast<int32_t>(_data.size()));
}

void binary_column::clear() {
    _offsets.assign(1, 0);
    _data.clear();
    _validity.clear();
    _nulls = 0;
}

void binary_column::reserve(size_t rows, size_t bytes) {
    _offsets.reserve(_offsets.size() + rows);
    _data.reserve(_data.size() + bytes);
}

void record_builder::reserve(size_t records, size_t bytes) {
    _timestamps.reserve(records);
    _header_offsets.reserve(records + 1);
    _keys.reserve(records, bytes / 8);
    _values.reserve(records, bytes);
}

void record_builder::add(int64_t timestamp, const uint8_t* key, int64_t key_length, const uint8_t* value,
                         int64_t value_length) {
    _keys.add(key, key_length);
    _values.add(value, value_length);
    _timestamps.push_back(timestamp);
    _header_offsets.push_back(_header_offsets.back());
    _min_ts = std::min(_min_ts, timestamp);
    _max_ts = std::max(_max_ts, timestamp);
}

void record_builder::add_header(const uint8_t* name, size_t name_length, const uint8_t* value, int64_t value_length) {
    _header_names.add(name, static_cast<int64_t>(name_length));
    _header_values.add(value, value_length);
    ++_header_offsets.back();
}

size_t record_builder::bytes() const {
    return _timestamps.size() * (8 + 4 + 4 + 4) + _keys.data().size() + _values.data().size() +
           _header_names.data().size() + _header_values.data().size() + _header_names.count() * 8;
}

void record_builder::clear() {
    _timestamps.clear();
    _keys.clear();
    _values.clear();
    _header_offsets.assign(1, 0);
    _header_names.clear();
    _header_values.clear();
    _min_ts = INT64_MAX;
    _max_ts = INT64_MIN;
}

}  // namespace tidelog
