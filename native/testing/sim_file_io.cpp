#include "sim_file_io.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <stdexcept>

#include "file_io.h"

#ifndef TIDELOG_IO_HOOKS
#error "sim_file_io.cpp needs a core built with TIDELOG_IO_HOOKS"
#endif

namespace tidelog {
namespace sim {

namespace {

file_system* g_fs = nullptr;

int t_open(const char* p, int f, mode_t m) { return g_fs->do_open(p, f, m); }
ssize_t t_pwritev(int fd, const struct iovec* v, int n, off_t pos) { return g_fs->do_pwritev(fd, v, n, pos); }
int t_fdatasync(int fd) { return g_fs->do_sync(fd); }
int t_fsync(int fd) { return g_fs->do_sync(fd); }
int t_fallocate(int fd, int mode, off_t pos, off_t len) { return g_fs->do_fallocate(fd, mode, pos, len); }
int t_ftruncate(int fd, off_t len) { return g_fs->do_ftruncate(fd, len); }
int t_mkdir(const char* p, mode_t m) { return g_fs->do_mkdir(p, m); }
int t_unlink(const char* p) { return g_fs->do_unlink(p); }
int t_rename(const char* a, const char* b) { return g_fs->do_rename(a, b); }

const io::hooks sim_hooks = {t_open, t_pwritev, t_fdatasync, t_fsync, t_fallocate,
                             t_ftruncate, t_mkdir, t_unlink, t_rename};

std::string dirname_of(const std::string& path) {
    size_t slash = path.find_last_of('/');
    return slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
}

std::string basename_of(const std::string& path) {
    size_t slash = path.find_last_of('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string read_all(int fd) {
    std::string out;
    char buf[65536];
    off_t pos = 0;
    while (true) {
        // Holes read as zeros: skip them (segments are preallocated far past their data).
        off_t data = ::lseek(fd, pos, SEEK_DATA);
        if (data < 0 && errno == ENXIO) break;  // only a hole (or nothing) from pos on
        if (data > pos) {
            out.resize(static_cast<size_t>(data), '\0');
            pos = data;
        }
        ssize_t n = ::pread(fd, buf, sizeof buf, pos);
        if (n < 0) {
            if (errno == EINTR) continue;
            throw std::runtime_error(std::string("sim: pread: ") + std::strerror(errno));
        }
        if (n == 0) break;
        out.append(buf, static_cast<size_t>(n));
        pos += n;
    }
    size_t last = out.find_last_not_of('\0');
    out.resize(last == std::string::npos ? 0 : last + 1);  // trailing zeros are implied by the size
    return out;
}

struct errno_guard {
    int saved;
    errno_guard() : saved(errno) {}
    void restore() { errno = saved; }
};

}  // namespace

file_system::file_system(std::string root) : _root(std::move(root)) {
    while (_root.size() > 1 && _root.back() == '/') _root.pop_back();
    struct stat st;
    if (::stat(_root.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
        throw std::runtime_error("sim: root is not a folder: " + _root);
    _dev = st.st_dev;
    _root_node = import(_root);
}

file_system::~file_system() { uninstall(); }

void file_system::install() {
    std::lock_guard<std::mutex> g(_mu);
    if (_installed) return;
    if (g_fs) throw std::runtime_error("sim: another simulator is installed");
    g_fs = this;
    io::install_hooks(&sim_hooks);
    _installed = true;
}

void file_system::uninstall() {
    std::lock_guard<std::mutex> g(_mu);
    if (!_installed) return;
    io::install_hooks(nullptr);
    g_fs = nullptr;
    _installed = false;
}

uint64_t file_system::operations() const {
    std::lock_guard<std::mutex> g(_mu);
    return _operations;
}

bool file_system::cut() const {
    std::lock_guard<std::mutex> g(_mu);
    return _dead;
}

void file_system::arm(uint64_t n, uint64_t seed, const cut_options& options) {
    std::lock_guard<std::mutex> g(_mu);
    _cut_at = n ? _operations + n : 0;
    _seed = seed;
    _options = options;
}

void file_system::cut_now(uint64_t seed, const cut_options& options) {
    std::lock_guard<std::mutex> g(_mu);
    if (_dead) return;
    if (!_cut_at) {
        _seed = seed;
        _options = options;
    }
    do_cut_locked();
}

// --- bookkeeping -------------------------------------------------------------

bool file_system::under_root(const char* path) const {
    size_t n = _root.size();
    return std::strncmp(path, _root.c_str(), n) == 0 && (path[n] == '/' || path[n] == '\0');
}

bool file_system::begin_op() {
    if (_dead) {
        errno = EIO;
        return false;
    }
    ++_operations;
    if (_cut_at && _operations >= _cut_at) {
        do_cut_locked();
        errno = EIO;
        return false;
    }
    return true;
}

uint64_t file_system::node_of_fd(int fd) {
    struct stat st;
    if (::fstat(fd, &st) != 0 || st.st_dev != _dev) return 0;
    auto it = _node_by_ino.find(st.st_ino);
    return it == _node_by_ino.end() ? 0 : it->second;
}

uint64_t file_system::node_of_path(const std::string& path, bool follow) {
    struct stat st;
    int rc = follow ? ::stat(path.c_str(), &st) : ::lstat(path.c_str(), &st);
    if (rc != 0 || st.st_dev != _dev) return 0;
    auto it = _node_by_ino.find(st.st_ino);
    if (it != _node_by_ino.end()) return it->second;
    return 0;
}

uint64_t file_system::parent_node(const std::string& path, std::string* leaf) {
    *leaf = basename_of(path);
    std::string parent = dirname_of(path);
    uint64_t p = node_of_path(parent, true);
    if (!p && under_root(parent.c_str())) {
        // Made behind the simulator's back (not through the core): take it as durable.
        uint64_t grand = 0;
        std::string name;
        if (parent != _root) grand = parent_node(parent, &name);
        p = import(parent);
        if (grand) _nodes[grand].entries[name] = entry{p, true};
    }
    return p;
}

uint64_t file_system::import(const std::string& path) {
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0) throw std::runtime_error("sim: cannot stat " + path);
    uint64_t id = _next_node++;
    node& n = _nodes[id];
    _node_by_ino[st.st_ino] = id;
    if (S_ISDIR(st.st_mode)) {
        n.dir = true;
        std::vector<std::string> names;
        if (DIR* d = ::opendir(path.c_str())) {
            while (struct dirent* e = ::readdir(d)) {
                std::string name = e->d_name;
                if (name != "." && name != "..") names.push_back(name);
            }
            ::closedir(d);
        }
        for (auto& name : names) {
            std::string child = path + "/" + name;
            struct stat cs;
            if (::lstat(child.c_str(), &cs) != 0) continue;
            if (!S_ISDIR(cs.st_mode) && !S_ISREG(cs.st_mode)) continue;
            uint64_t c = import(child);
            _nodes[id].entries[name] = entry{c, S_ISDIR(cs.st_mode)};  // _nodes may rehash: index again
        }
    } else {
        int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) throw std::runtime_error("sim: cannot open " + path);
        n.data = read_all(fd);
        n.size = static_cast<uint64_t>(st.st_size);
        ::close(fd);
    }
    return id;
}

void file_system::add_dir_op(uint64_t dir, dir_op op) {
    op.sequence = ++_sequence;
    _nodes[dir].dir_pending.push_back(std::move(op));
}

void file_system::apply_full(node& n, const file_op& op) {
    switch (op.kind) {
        case op_kind::write:
            if (n.data.size() < op.position + op.bytes.size()) n.data.resize(op.position + op.bytes.size(), '\0');
            std::memcpy(&n.data[op.position], op.bytes.data(), op.bytes.size());
            n.size = std::max(n.size, op.position + op.bytes.size());
            break;
        case op_kind::truncate:
            if (n.data.size() > op.length) n.data.resize(op.length);
            n.size = op.length;
            break;
        case op_kind::allocate:
            n.size = std::max(n.size, op.position);
            break;
    }
}

// --- hooks -------------------------------------------------------------------

int file_system::do_open(const char* path, int flags, mode_t mode) {
    std::unique_lock<std::mutex> g(_mu);
    if (!under_root(path)) {
        g.unlock();
        return ::open(path, flags, mode);
    }
    bool mutating = (flags & (O_CREAT | O_TRUNC)) != 0;
    if (!mutating) {
        if (_dead) {
            errno = EIO;
            return -1;
        }
        return ::open(path, flags, mode);
    }
    if (!begin_op()) return -1;
    struct stat st;
    bool existed = ::lstat(path, &st) == 0;
    int fd = ::open(path, flags, mode);
    if (fd < 0) return fd;
    errno_guard e;
    std::string leaf;
    uint64_t parent = parent_node(path, &leaf);
    if (!existed) {
        struct stat nst;
        ::fstat(fd, &nst);
        uint64_t id = _next_node++;
        _nodes[id] = node{};
        _node_by_ino[nst.st_ino] = id;
        if (parent) add_dir_op(parent, dir_op{0, dir_op_kind::link, leaf, {}, entry{id, false}});
    } else if ((flags & O_TRUNC) && S_ISREG(st.st_mode)) {
        uint64_t id = node_of_fd(fd);
        if (!id) {
            id = import(path);
            if (parent) _nodes[parent].entries[leaf] = entry{id, false};
        }
        _nodes[id].pending.push_back(file_op{op_kind::truncate, 0, 0, {}});
    }
    e.restore();
    return fd;
}

ssize_t file_system::do_pwritev(int fd, const struct iovec* iov, int count, off_t position) {
    std::lock_guard<std::mutex> g(_mu);
    uint64_t id = node_of_fd(fd);
    if (!id) return ::pwritev(fd, iov, count, position);
    if (!begin_op()) return -1;
    ssize_t n = ::pwritev(fd, iov, count, position);
    if (n <= 0) return n;
    errno_guard e;
    file_op op{op_kind::write, static_cast<uint64_t>(position), 0, {}};
    op.bytes.reserve(static_cast<size_t>(n));
    size_t left = static_cast<size_t>(n);
    for (int i = 0; i < count && left; ++i) {
        size_t take = std::min(left, iov[i].iov_len);
        op.bytes.append(static_cast<const char*>(iov[i].iov_base), take);
        left -= take;
    }
    _nodes[id].pending.push_back(std::move(op));
    e.restore();
    return n;
}

int file_system::do_sync(int fd) {
    std::lock_guard<std::mutex> g(_mu);
    uint64_t id = node_of_fd(fd);
    if (!id) return ::fdatasync(fd);
    if (!begin_op()) return -1;
    node& n = _nodes[id];
    double forget = n.dir ? _forget_dir_syncs : _forget_file_syncs;
    if (forget > 0 && std::uniform_real_distribution<double>(0, 1)(_forget_rng) < forget) return 0;
    if (n.dir) {
        for (auto& op : n.dir_pending) {
            switch (op.kind) {
                case dir_op_kind::link: n.entries[op.name] = op.target; break;
                case dir_op_kind::unlink: n.entries.erase(op.name); break;
                case dir_op_kind::rename:
                    n.entries.erase(op.name);
                    n.entries[op.to] = op.target;
                    break;
            }
        }
        n.dir_pending.clear();
    } else {
        for (auto& op : n.pending) apply_full(n, op);
        n.pending.clear();
    }
    return 0;  // the simulator is the disk: no real sync needed
}

int file_system::do_fallocate(int fd, int mode, off_t position, off_t length) {
    std::lock_guard<std::mutex> g(_mu);
    uint64_t id = node_of_fd(fd);
    if (!id) return ::fallocate(fd, mode, position, length);
    if (!begin_op()) return -1;
    int rc;
    if (mode == 0) {
        // The visible effect of fallocate: the size grows over zeros. A sparse
        // extension shows the same bytes without tmpfs zeroing 32 MiB per segment.
        struct stat st;
        rc = ::fstat(fd, &st);
        if (rc == 0 && st.st_size < position + length) rc = ::ftruncate(fd, position + length);
    } else {
        rc = ::fallocate(fd, mode, position, length);
    }
    if (rc != 0) return rc;
    if (mode == 0) _nodes[id].pending.push_back(file_op{op_kind::allocate, uint64_t(position + length), 0, {}});
    return rc;
}

int file_system::do_ftruncate(int fd, off_t length) {
    std::lock_guard<std::mutex> g(_mu);
    uint64_t id = node_of_fd(fd);
    if (!id) return ::ftruncate(fd, length);
    if (!begin_op()) return -1;
    int rc = ::ftruncate(fd, length);
    if (rc != 0) return rc;
    _nodes[id].pending.push_back(file_op{op_kind::truncate, 0, static_cast<uint64_t>(length), {}});
    return rc;
}

int file_system::do_mkdir(const char* path, mode_t mode) {
    std::lock_guard<std::mutex> g(_mu);
    if (!under_root(path) || std::strcmp(path, _root.c_str()) == 0) return ::mkdir(path, mode);
    struct stat st;
    if (::lstat(path, &st) == 0) {  // EEXIST: no change, not an operation on the disk
        errno = EEXIST;
        return -1;
    }
    if (!begin_op()) return -1;
    int rc = ::mkdir(path, mode);
    if (rc != 0) return rc;
    errno_guard e;
    std::string leaf;
    uint64_t parent = parent_node(path, &leaf);
    ::lstat(path, &st);
    uint64_t id = _next_node++;
    _nodes[id].dir = true;
    _node_by_ino[st.st_ino] = id;
    if (parent) add_dir_op(parent, dir_op{0, dir_op_kind::link, leaf, {}, entry{id, true}});
    e.restore();
    return rc;
}

int file_system::do_unlink(const char* path) {
    std::lock_guard<std::mutex> g(_mu);
    if (!under_root(path)) return ::unlink(path);
    struct stat st;
    if (::lstat(path, &st) != 0) {
        if (_dead) errno = EIO;
        return -1;  // ENOENT: nothing happens on disk
    }
    if (!begin_op()) return -1;
    int rc = ::unlink(path);
    if (rc != 0) return rc;
    errno_guard e;
    std::string leaf;
    uint64_t parent = parent_node(path, &leaf);
    if (parent) add_dir_op(parent, dir_op{0, dir_op_kind::unlink, leaf, {}, {}});
    e.restore();
    return rc;
}

int file_system::do_rename(const char* from, const char* to) {
    std::lock_guard<std::mutex> g(_mu);
    if (!under_root(from) && !under_root(to)) return ::rename(from, to);
    if (!begin_op()) return -1;
    struct stat st;
    bool have = ::lstat(from, &st) == 0;
    uint64_t id = have ? node_of_path(from) : 0;
    int rc = ::rename(from, to);
    if (rc != 0) return rc;
    errno_guard e;
    if (!id) id = import(to);
    std::string from_leaf, to_leaf;
    uint64_t from_parent = parent_node(from, &from_leaf);
    uint64_t to_parent = parent_node(to, &to_leaf);
    entry target{id, S_ISDIR(st.st_mode)};
    if (from_parent == to_parent && from_parent) {
        add_dir_op(from_parent, dir_op{0, dir_op_kind::rename, from_leaf, to_leaf, target});
    } else {
        // Across folders each side becomes durable with its own folder's fsync.
        if (to_parent) add_dir_op(to_parent, dir_op{0, dir_op_kind::link, to_leaf, {}, target});
        if (from_parent) add_dir_op(from_parent, dir_op{0, dir_op_kind::unlink, from_leaf, {}, {}});
    }
    e.restore();
    return rc;
}

// --- the cut -----------------------------------------------------------------

void file_system::crash_file(const node& n, std::string& data, uint64_t& size) {
    data = n.data;
    size = n.size;
    if (n.pending.empty()) return;
    size_t k;  // the size-changing metadata that reached the journal: a prefix
    if (_options.keep_everything) k = n.pending.size();
    else if (_options.keep_nothing) k = 0;
    else k = std::uniform_int_distribution<size_t>(0, n.pending.size())(_rng);
    std::uniform_real_distribution<double> u(0, 1);
    for (size_t i = 0; i < n.pending.size(); ++i) {
        const file_op& op = n.pending[i];
        bool meta = i < k;
        switch (op.kind) {
            case op_kind::write: {
                ++_last.pending_writes;
                uint64_t end = op.position + op.bytes.size();
                for (uint64_t a = op.position; a < end;) {
                    uint64_t b = std::min(end, (a / sector_bytes + 1) * sector_bytes);
                    bool keep = _options.keep_everything ? true
                                : _options.keep_nothing  ? false
                                                         : u(_rng) < _options.keep_sector;
                    if (keep) {
                        if (data.size() < b) data.resize(b, '\0');
                        std::memcpy(&data[a], op.bytes.data() + (a - op.position), b - a);
                    } else if (!_options.keep_nothing && _options.garbage > 0 && u(_rng) < _options.garbage) {
                        if (data.size() < b) data.resize(b, '\0');
                        for (uint64_t j = a; j < b; ++j) data[j] = static_cast<char>(_rng());
                        ++_last.garbage_sectors;
                    } else {
                        ++_last.torn_sectors;
                    }
                    a = b;
                }
                if (meta) size = std::max(size, end);
                break;
            }
            case op_kind::truncate:
                if (meta) {
                    if (data.size() > op.length) data.resize(op.length);
                    size = op.length;
                }
                break;
            case op_kind::allocate:
                if (meta) size = std::max(size, op.position);
                break;
        }
    }
    if (data.size() > size) data.resize(size);
}

void file_system::crash_dir(const node& n, uint64_t cutoff, std::map<std::string, entry>& out) {
    out = n.entries;
    std::uniform_real_distribution<double> u(0, 1);
    for (const dir_op& op : n.dir_pending) {
        bool keep = _options.keep_everything ? true
                    : _options.keep_nothing  ? false
                    : _options.ordered_metadata ? op.sequence < cutoff
                                                : u(_rng) < 0.5;
        if (!keep) {
            ++_last.lost_dir_ops;
            continue;
        }
        ++_last.kept_dir_ops;
        switch (op.kind) {
            case dir_op_kind::link: out[op.name] = op.target; break;
            case dir_op_kind::unlink: out.erase(op.name); break;
            case dir_op_kind::rename:
                out.erase(op.name);
                out[op.to] = op.target;
                break;
        }
    }
}

void file_system::collect_image(uint64_t dir, const std::string& relative, uint64_t cutoff,
                                std::vector<image_item>& out) {
    std::map<std::string, entry> entries;
    crash_dir(_nodes.at(dir), cutoff, entries);
    for (auto& [name, e] : entries) {
        std::string rel = relative.empty() ? name : relative + "/" + name;
        auto it = _nodes.find(e.node);
        if (it == _nodes.end()) continue;
        if (it->second.dir) {
            out.push_back(image_item{rel, true, {}, 0});
            collect_image(e.node, rel, cutoff, out);
        } else {
            image_item item{rel, false, {}, 0};
            crash_file(it->second, item.data, item.size);
            out.push_back(std::move(item));
        }
    }
}

void file_system::do_cut_locked() {
    if (_dead) return;
    _dead = true;
    _cut_at = 0;
    _rng.seed(_seed);
    _last = stats{};
    _last.operations = _operations;
    // The global prefix of unsynced entry operations that reached the journal.
    uint64_t lowest = _sequence + 1;
    for (auto& [id, n] : _nodes)
        for (auto& op : n.dir_pending) lowest = std::min(lowest, op.sequence);
    uint64_t cutoff = std::uniform_int_distribution<uint64_t>(lowest, _sequence + 1)(_rng);
    _image.clear();
    collect_image(_root_node, "", cutoff, _image);
}

void file_system::reboot() {
    std::lock_guard<std::mutex> g(_mu);
    if (!_dead) throw std::runtime_error("sim: reboot without a cut");
    namespace fs = std::filesystem;
    for (auto& child : fs::directory_iterator(_root)) fs::remove_all(child.path());
    _nodes.clear();
    _node_by_ino.clear();
    struct stat st;
    ::stat(_root.c_str(), &st);
    _root_node = _next_node++;
    _nodes[_root_node].dir = true;
    _node_by_ino[st.st_ino] = _root_node;
    std::unordered_map<std::string, uint64_t> dirs{{"", _root_node}};
    for (auto& item : _image) {
        std::string path = _root + "/" + item.relative;
        size_t slash = item.relative.find_last_of('/');
        std::string parent_rel = slash == std::string::npos ? "" : item.relative.substr(0, slash);
        std::string leaf = slash == std::string::npos ? item.relative : item.relative.substr(slash + 1);
        uint64_t id = _next_node++;
        if (item.dir) {
            if (::mkdir(path.c_str(), 0755) != 0) throw std::runtime_error("sim: mkdir " + path);
            _nodes[id].dir = true;
            dirs[item.relative] = id;
        } else {
            int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
            if (fd < 0) throw std::runtime_error("sim: create " + path);
            size_t done = 0;
            while (done < item.data.size()) {
                ssize_t n = ::pwrite(fd, item.data.data() + done, item.data.size() - done, static_cast<off_t>(done));
                if (n <= 0) throw std::runtime_error("sim: write " + path);
                done += static_cast<size_t>(n);
            }
            if (::ftruncate(fd, static_cast<off_t>(item.size)) != 0) throw std::runtime_error("sim: ftruncate " + path);
            ::close(fd);
            node& n = _nodes[id];
            n.data = std::move(item.data);
            n.size = item.size;
        }
        ::lstat(path.c_str(), &st);
        _node_by_ino[st.st_ino] = id;
        _nodes[dirs.at(parent_rel)].entries[leaf] = entry{id, item.dir};
    }
    _image.clear();
    _dead = false;
    _cut_at = 0;
}

void file_system::sync_everything_locked() {
    for (auto& [id, n] : _nodes) {
        if (n.dir) {
            for (auto& op : n.dir_pending) {
                switch (op.kind) {
                    case dir_op_kind::link: n.entries[op.name] = op.target; break;
                    case dir_op_kind::unlink: n.entries.erase(op.name); break;
                    case dir_op_kind::rename:
                        n.entries.erase(op.name);
                        n.entries[op.to] = op.target;
                        break;
                }
            }
            n.dir_pending.clear();
        } else {
            for (auto& op : n.pending) apply_full(n, op);
            n.pending.clear();
        }
    }
}

void file_system::forget_syncs(double directories, double files, uint64_t seed) {
    std::lock_guard<std::mutex> g(_mu);
    _forget_dir_syncs = directories;
    _forget_file_syncs = files;
    _forget_rng.seed(seed);
}

void file_system::sync_everything() {
    std::lock_guard<std::mutex> g(_mu);
    sync_everything_locked();
}

std::string file_system::describe_last_cut() const {
    std::ostringstream s;
    s << "cut after " << _last.operations << " operations (seed " << _seed << ", keep_sector "
      << _options.keep_sector << ", garbage " << _options.garbage << ", "
      << (_options.keep_everything ? "keep everything"
          : _options.keep_nothing  ? "keep nothing"
          : _options.ordered_metadata ? "ordered metadata"
                                      : "unordered metadata")
      << "): " << _last.pending_writes << " pending writes, " << _last.torn_sectors << " sectors lost, "
      << _last.garbage_sectors << " garbage, " << _last.lost_dir_ops << " of "
      << (_last.lost_dir_ops + _last.kept_dir_ops) << " entry operations lost";
    return s.str();
}

}  // namespace sim
}  // namespace tidelog
