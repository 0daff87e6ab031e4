#pragma once
// A power-loss simulator for the native core (test builds only: needs
// TIDELOG_IO_HOOKS), in the spirit of SQLite's crash VFS.
//
// Design: the core keeps working on real files under `root` (best on tmpfs),
// so reads, mmap and readdir see the live state, as they would see the page
// cache. The simulator sits on the mutation interface (file_io.h) and keeps,
// beside the real files, what a disk would hold:
//   - per file (inode): the durable image (bytes and size as of its last
//     fdatasync/fsync) and the writes, truncates and fallocates made since;
//   - per directory: the durable entries (as of its last fsync) and the
//     creates, mkdirs, unlinks and renames made since.
// A power cut freezes a crash image computed from that state:
//   - files: each pending write is applied sector by sector (512-byte sectors,
//     at absolute file positions): every sector independently reaches the disk,
//     does not, or (optionally) holds garbage instead. Garbage is confined to
//     the bytes that write covered in that sector: bytes the core did not touch
//     stay as they are (a drive rewrites a page with the bytes the page cache
//     holds; a device that scrambles bytes it was not asked to change defeats
//     any log that does not pad to sectors). The file size is that of a random
//     prefix of the size-changing operations (write extensions, ftruncate,
//     fallocate), as metadata is journaled in order;
//   - directories: either a random global prefix of the unsynced entry
//     operations (what an ordered-journal file system such as ext4 or XFS can
//     leave), or each of them independently kept or lost (what POSIX allows).
// From the cut on, every mutation fails with EIO (the machine is dead): the
// test tears its objects down, then reboot() rewrites `root` from the image,
// and the next open runs recovery on exactly what the disk held.
//
// Thread safety: every hooked call takes one mutex (the simulated disk is
// serial). Only one simulator may be installed at a time.
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include <sys/types.h>
#include <sys/uio.h>

namespace tidelog {
namespace sim {

constexpr uint64_t sector_bytes = 512;

struct cut_options {
    /// Probability that a sector of a pending write reaches the disk.
    double keep_sector = 0.5;
    /// Probability that a sector that did not reach the disk holds garbage.
    double garbage = 0.0;
    /// Directory operations: true = a random global prefix; false = each one
    /// kept or lost independently.
    bool ordered_metadata = true;
    /// Shortcuts that are also common in reality: everything pending reaches
    /// the disk (a process crash), or nothing does.
    bool keep_everything = false;
    bool keep_nothing = false;
};

struct stats {
    uint64_t operations = 0;      // hooked mutations
    uint64_t pending_writes = 0;  // writes not yet synced at the cut
    uint64_t torn_sectors = 0;    // sectors of those that kept old bytes
    uint64_t garbage_sectors = 0;
    uint64_t lost_dir_ops = 0;    // unsynced entry operations the cut dropped
    uint64_t kept_dir_ops = 0;
};

class file_system {
public:
    /// root: an existing folder; its current content is taken as durable.
    explicit file_system(std::string root);
    ~file_system();  // uninstalls
    file_system(const file_system&) = delete;
    file_system& operator=(const file_system&) = delete;

    /// Routes the core's mutations through this simulator.
    void install();
    void uninstall();

    /// Arms a power cut before the n-th hooked mutation from now (n >= 1);
    /// n = 0 disarms.
    void arm(uint64_t n, uint64_t seed, const cut_options& options);
    /// Cuts power now, if no cut happened yet (seed/options from arm(), or these).
    void cut_now(uint64_t seed, const cut_options& options);
    bool cut() const;
    /// After the cut and after every object of the core that held files was
    /// destroyed: rewrites root from the crash image. Everything is durable then.
    void reboot();
    /// Self-test of a harness: from now on, ignore a fraction of directory
    /// fsyncs / file syncs (report success, make nothing durable), as a core
    /// that forgot them would. A torture test must then find violations.
    void forget_syncs(double directories, double files, uint64_t seed);
    /// Makes everything durable now, as if every file and folder were synced
    /// (tests that start from a known state).
    void sync_everything();

    const std::string& root() const { return _root; }
    uint64_t operations() const;
    const stats& last_cut() const { return _last; }
    /// A one-line description of the last cut, for failure messages.
    std::string describe_last_cut() const;

    // --- the hooks (public for the C trampolines; not for tests) ---
    int do_open(const char* path, int flags, mode_t mode);
    ssize_t do_pwritev(int fd, const struct iovec* iov, int count, off_t position);
    int do_sync(int fd);
    int do_fallocate(int fd, int mode, off_t position, off_t length);
    int do_ftruncate(int fd, off_t length);
    int do_mkdir(const char* path, mode_t mode);
    int do_unlink(const char* path);
    int do_rename(const char* from, const char* to);

private:
    enum class op_kind : uint8_t { write, truncate, allocate };
    struct file_op {
        op_kind kind;
        uint64_t position;  // write: where; allocate: end
        uint64_t length;    // truncate: new size
        std::string bytes;  // write
    };
    struct entry {
        uint64_t node;
        bool dir;
    };
    enum class dir_op_kind : uint8_t { link, unlink, rename };
    struct dir_op {
        uint64_t sequence;
        dir_op_kind kind;
        std::string name, to;  // rename: name -> to (same folder)
        entry target;
    };
    struct node {
        bool dir = false;
        // files
        std::string data;  // durable bytes [0, data.size()); zeros up to size
        uint64_t size = 0;
        std::vector<file_op> pending;
        // folders
        std::map<std::string, entry> entries;
        std::vector<dir_op> dir_pending;
    };
    struct image_item {
        std::string relative;  // path below root
        bool dir;
        std::string data;
        uint64_t size;
    };

    bool under_root(const char* path) const;
    bool begin_op();  // false: dead (errno set to EIO)
    uint64_t node_of_fd(int fd);    // 0 if untracked
    uint64_t node_of_path(const std::string& path, bool follow = false);
    uint64_t parent_node(const std::string& path, std::string* leaf);
    uint64_t import(const std::string& path);
    void add_dir_op(uint64_t dir, dir_op op);
    void do_cut_locked();
    static void apply_full(node& n, const file_op& op);
    void crash_file(const node& n, std::string& data, uint64_t& size);
    void crash_dir(const node& n, uint64_t cutoff, std::map<std::string, entry>& out);
    void collect_image(uint64_t dir, const std::string& relative, uint64_t cutoff, std::vector<image_item>& out);
    void sync_everything_locked();

    std::string _root;
    mutable std::mutex _mu;
    std::unordered_map<uint64_t, node> _nodes;
    std::unordered_map<uint64_t, uint64_t> _node_by_ino;  // st_ino -> node id (live files)
    uint64_t _next_node = 1;
    uint64_t _root_node = 0;
    dev_t _dev = 0;
    uint64_t _sequence = 0;
    uint64_t _operations = 0;
    uint64_t _cut_at = 0;  // operation number that cuts (0: not armed)
    bool _dead = false;
    uint64_t _seed = 0;
    cut_options _options;
    std::mt19937_64 _rng;
    std::vector<image_item> _image;
    stats _last;
    bool _installed = false;
    double _forget_dir_syncs = 0, _forget_file_syncs = 0;
    std::mt19937_64 _forget_rng;
};

}  // namespace sim
}  // namespace tidelog
