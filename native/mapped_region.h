#pragma once
// A read-only shared mapping of a file. Shared by shared_ptr: every Arrow buffer
// handed to Python holds one, so the mapping outlives retention's unlink (the
// inode stays alive until the last munmap).
#include <cstdint>
#include <memory>
#include <string>

namespace tidelog {

class mapped_region {
public:
    /// Maps [0, length) of the file behind fd; length 0 gives an empty region.
    static std::shared_ptr<mapped_region> map(int fd, uint64_t length, const std::string& path);
    ~mapped_region();
    mapped_region(const mapped_region&) = delete;
    mapped_region& operator=(const mapped_region&) = delete;

    const uint8_t* data() const { return _data; }
    uint64_t length() const { return _length; }
    const std::string& path() const { return _path; }

    mapped_region(const uint8_t* data, uint64_t length, std::string path)
        : _data(data), _length(length), _path(std::move(path)) {}

private:
    const uint8_t* _data;
    uint64_t _length;
    std::string _path;
};

}  // namespace tidelog
