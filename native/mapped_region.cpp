#include "mapped_region.h"

#include <sys/mman.h>

#include "errors.h"

namespace tidelog {

std::shared_ptr<mapped_region> mapped_region::map(int fd, uint64_t length, const std::string& path) {
    if (length == 0) return std::make_shared<mapped_region>(nullptr, 0, path);
    void* p = ::mmap(nullptr, length, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) throw_errno("mmap " + path);
    return std::make_shared<mapped_region>(static_cast<const uint8_t*>(p), length, path);
}

mapped_region::~mapped_region() {
    if (_data) ::munmap(const_cast<uint8_t*>(_data), _length);
}

}  // namespace tidelog
