#include "partition.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>

#include "crc32c.h"
#include "errors.h"
#include "frame_resync.h"
#include "frame_walker.h"
#include "kill_points.h"
#include "segment_rewriter.h"
#include "ofd_lock.h"
#include "process_id.h"
#include "units.h"

namespace tidelog {

namespace {

constexpr uint32_t partition_ready = 2;

int64_t wall_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

/// An epoch of its own, for a handle outside any log session (never 0).
partition::session_info own_session(bool clean_shutdown) {
    static std::atomic<uint64_t> counter{0};
    uint64_t e = (uint64_t(::getpid()) << 40) ^ uint64_t(wall_ns()) ^ (++counter << 1);
    return {e | 1, clean_shutdown};
}

std::string last_path_part(const std::string& path) {
    size_t end = path.find_last_not_of('/');
    if (end == std::string::npos) return path;
    size_t slash = path.rfind('/', end);
    return path.substr(slash == std::string::npos ? 0 : slash + 1, end - (slash == std::string::npos ? 0 : slash + 1) + 1);
}

/// The error for damage a reader meets: its place travels as fields (Python's
/// CorruptionError attributes), the message says the same for people.
error corrupt_frame(const std::string& partition_dir, const damaged_range& d) {
    std::string topic_dir = partition_dir.substr(0, partition_dir.find_last_not_of('/') + 1);
    topic_dir = topic_dir.substr(0, topic_dir.rfind('/') == std::string::npos ? 0 : topic_dir.rfind('/'));
    damage_place place;
    place.topic = last_path_part(topic_dir);
    std::string partition_name = last_path_part(partition_dir);
    if (!partition_name.empty() && partition_name.size() <= 9 &&
        partition_name.find_first_not_of("0123456789") == std::string::npos)
        place.partition = std::atoi(partition_name.c_str());
    place.segment = d.segment;
    place.position = d.position;
    place.start_offset = d.start_offset;
    place.end_offset = d.end_offset;
    std::string message = "topic '" + place.topic + "' partition " + partition_name + " segment " +
                          last_path_part(d.segment) + " position " + std::to_string(d.position) + " (offsets " +
                          std::to_string(d.start_offset) + ".." + std::to_string(d.end_offset - 1) +
                          "): " + d.reason + " [" + d.segment + "]";
    return error(errc::corrupt, message, std::move(place));
}

std::vector<int64_t> list_segment_bases(const std::string& dir) {
    std::vector<int64_t> bases;
    DIR* d = ::opendir(dir.c_str());
    if (!d) {
        if (errno == ENOENT) return bases;
        throw_errno("opendir " + dir);
    }
    while (struct dirent* e = ::readdir(d)) {
        std::string name = e->d_name;
        if (name.size() != 24 || name.compare(20, 4, ".log") != 0) continue;
        if (name.find_first_not_of("0123456789") != 20) continue;
        bases.push_back(std::strtoll(name.substr(0, 20).c_str(), nullptr, 10));
    }
    ::closedir(d);
    std::sort(bases.begin(), bases.end());
    return bases;
}

/// Leftovers of a compaction swap (FORMAT.md §2.7): every name ending in ".cleaned".
std::vector<std::string> list_cleaned_files(const std::string& dir) {
    std::vector<std::string> out;
    DIR* d = ::opendir(dir.c_str());
    if (!d) {
        if (errno == ENOENT) return out;
        throw_errno("opendir " + dir);
    }
    static const std::string suffix = segment_rewriter::cleaned_suffix();
    while (struct dirent* e = ::readdir(d)) {
        std::string name = e->d_name;
        if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
            out.push_back(dir + "/" + name);
    }
    ::closedir(d);
    return out;
}

/// Removes them; true if there were any (the caller fsyncs the folder).
bool remove_cleaned_files(const std::string& dir) {
    std::vector<std::string> leftovers = list_cleaned_files(dir);
    for (auto& path : leftovers) remove_file(path);
    return !leftovers.empty();
}

}  // namespace

partition::partition(committer* c, const std::string& dir, const partition_config& config, bool read_only,
                     bool clean_shutdown, shared_state* notifier)
    : partition(c, dir, config, read_only ? nullptr : std::make_unique<session_info>(own_session(clean_shutdown)).get(),
                notifier) {}

partition::partition(committer* c, const std::string& dir, const partition_config& config,
                     const session_info* session, shared_state* notifier)
    : _committer(c),
      _dir(dir),
      _config(config),
      _retention_bytes(config.retention_bytes),
      _retention_ms(config.retention_ms),
      _read_only(session == nullptr),
      _checkpoint((_read_only ? dir : (make_directories(dir), dir)) + "/recovery-checkpoint", _read_only),
      _shared(dir + "/state", !_read_only),
      _notifier(notifier),
      _session(session ? *session : session_info{0, true}) {
    if (config.segment_bytes == 0 || config.segment_bytes > max_segment_bytes)
        throw error(errc::invalid_argument, "segment_bytes must be in [1, 2 GiB)");
    if (_read_only) {
        open_reader();
    } else {
        open_writer();
        _committer->register_partition(this);
    }
}

partition::~partition() {
    if (!_read_only && !_closed) {
        try {
            close();
        } catch (...) {
        }
    }
}

void partition::open_reader() {
    std::lock_guard<std::mutex> g(_mu);
    refresh_segments_locked();
}

bool partition::refresh_segments_locked() {
    // Reader processes: pick up segments the writer rolled to, drop deleted ones.
    std::vector<int64_t> bases = list_segment_bases(_dir);
    std::vector<std::shared_ptr<segment>> next;
    bool changed = bases.size() != _segments.size();
    for (int64_t b : bases) {
        auto it = std::find_if(_segments.begin(), _segments.end(),
                               [&](const std::shared_ptr<segment>& s) { return s->base_offset() == b; });
        if (it != _segments.end()) {
            next.push_back(*it);
            continue;
        }
        changed = true;
        try {
            next.push_back(segment::open(_dir, b, true));
        } catch (const error& e) {
            if (e.code() != errc::not_found) throw;  // deleted between listing and opening
        }
    }
    // Retention publishes its start before it unlinks: a segment deleted between
    // the listing and its opening lies below the start read now, and so do the
    // older ones this handle kept open. Keeping those would leave a hole that a
    // walk reports as offsets missing from the segment: drop every segment whose
    // successor begins at or below the start.
    _shared.retry_open();
    int64_t start = _shared.start_offset();
    size_t first = 0;
    while (first + 1 < next.size() && next[first + 1]->base_offset() <= start) ++first;
    if (first > 0) {
        next.erase(next.begin(), next.begin() + static_cast<std::ptrdiff_t>(first));
        changed = true;
    }
    _segments = std::move(next);
    return changed;
}

void partition::open_writer() {
    _coord = _shared.coordination();
    _append_lock.emplace(_coord->append_lock);
    _retention_lock.emplace(_coord->retention_lock);
    _checkpoint_lock.emplace(_coord->checkpoint_lock);
    // The session's first handle to open the partition recovers it, under an
    // OFD lock on the state file; later ones (same epoch) join what it set up.
    // So recovery never runs while another live handle uses the partition.
    ofd_lock(_shared.fd(), 0, ofd_lock_kind::exclusive, true);
    try {
        std::lock_guard<std::mutex> g(_mu);
        if (__atomic_load_n(&_coord->init_state, __ATOMIC_ACQUIRE) == partition_ready &&
            _coord->epoch == _session.epoch)
            join_shared();
        else
            initialize_shared(_session.was_clean);
        __atomic_add_fetch(&_coord->handles, 1, __ATOMIC_SEQ_CST);
    } catch (...) {
        ofd_lock(_shared.fd(), 0, ofd_lock_kind::unlock, true);
        throw;
    }
    ofd_lock(_shared.fd(), 0, ofd_lock_kind::unlock, true);
}

void partition::join_shared() {
    _seen_commit_seq = UINT64_MAX;  // (adopts whatever the partition holds)
    _seen_generation = UINT64_MAX;
    catch_up_locked();
}

void partition::initialize_shared(bool clean_shutdown) {
    __atomic_store_n(&_coord->init_state, 1u, __ATOMIC_RELEASE);
    kill_point("open.partition_init");
    // A compaction swap stopped anywhere: before its rename the old log is
    // whole (its .cleaned files are dropped), after it the new one is; a
    // missing index is rebuilt below, as any missing index.
    if (remove_cleaned_files(_dir)) fsync_directory(_dir);
    std::vector<int64_t> bases = list_segment_bases(_dir);
    std::optional<recovery_point> cp = _checkpoint.load();
    // What the previous writer published to readers: offsets below it were seen
    // and must never be handed out again; in "fsync" mode they were also durable.
    // The file is not durable and not checksummed: it counts only when it agrees
    // with the folder (its start is a segment base) and does not leap absurdly.
    int64_t published = -1;
    if (_shared.inherited_end() >= 0 && !bases.empty() &&
        std::find(bases.begin(), bases.end(), _shared.inherited_start()) != bases.end() &&
        _shared.inherited_end() - bases.back() <= int64_t{UINT32_MAX})
        published = _shared.inherited_end();
    int64_t durable = cp ? cp->next_offset : 0;
    if (published >= 0 && _config.durability == durability_mode::fsync) durable = std::max(durable, published);

    if (bases.empty()) {
        _segments.push_back(segment::create(_dir, std::max<int64_t>(cp ? cp->next_offset : 0, published)));
        fsync_directory(_dir);
        std::string parent = _dir.substr(0, _dir.find_last_of('/'));
        if (!parent.empty()) fsync_directory(parent);
    } else {
        for (int64_t b : bases) _segments.push_back(segment::open(_dir, b, false));
    }

    // Where validation starts: a clean close or the recovery checkpoint vouch for
    // what precedes them, but the frames from the last index entry before that
    // point are CRC-checked on every open. Everything after the point is
    // CRC-checked too.
    size_t first = _segments.size() - 1;
    uint64_t trusted_end = UINT64_MAX;  // last segment: trusted up to its end after a clean close
    if (!clean_shutdown) {
        first = 0;
        trusted_end = 0;
        if (cp) {
            auto it = std::find_if(_segments.begin(), _segments.end(),
                                   [&](const std::shared_ptr<segment>& s) { return s->base_offset() == cp->segment_base; });
            if (it != _segments.end()) {
                first = static_cast<size_t>(it - _segments.begin());
                trusted_end = cp->position;
            }
        }
    }
    // Sealed segments end where the next begins; they were flushed and trimmed
    // before the checkpoint moved past them. Their indexes are derived data:
    // rebuilt (by a header walk) when they fail a sanity check.
    for (size_t i = 0; i + 1 < _segments.size(); ++i) check_sealed_segment(i, i < first);

    // Damage below the durable point is kept and reported, never cut: after a
    // clean close that is everything the checkpoint vouches for (everything, when
    // it is unreadable); after a crash, the checkpoint and (in "fsync" mode) what
    // the previous writer published as durable.
    int64_t keep_below = clean_shutdown && !cp ? INT64_MAX : durable;
    std::optional<damaged_bytes> tail = recover(first, trusted_end, clean_shutdown, keep_below, cp);
    auto last = _segments.back();
    int64_t end = last->next_offset();
    // Offsets are never handed out twice (FORMAT.md §8, "Offsets are never
    // reused"): the next one is past everything acknowledged, checkpointed or
    // published, and past a damaged tail.
    int64_t next = std::max({end, cp ? cp->next_offset : end, published});
    if (tail) next = std::max(next, tail->end_offset >= 0 ? tail->end_offset : tail->start_offset + 1);
    if (tail) report_damage(*last, *tail, next);
    if (!tail && next > end) {
        std::string range = std::to_string(end) + ".." + std::to_string(next - 1);
        std::string why = cp && cp->next_offset > end
                              ? "the log ends at offset " + std::to_string(end) + ", before its recovery checkpoint (" +
                                    std::to_string(cp->next_offset) + "): offsets " + range + " were lost"
                              : "offsets " + range + " were visible to readers but are not on disk";
        _events.push_back({last->log_path(), last->size(), 0, end, why + "; they are not given out again", "lost", 0,
                           next});
        note_damage({last->log_path(), last->size(), 0, end, next, why});
    }
    if (_checkpoint.created()) fsync_directory(_dir);  // the checkpoints stored next must survive a power cut
    if (tail || next > end) {
        start_new_segment_at(next);
        // The gap must outlive the next crash: with the durable point still
        // behind it, a later recovery would take the old segment's early end for
        // a torn tail and drop the new segment with what it acknowledged.
        _checkpointed = recovery_point{next, 0, next};
        _checkpoint.store(_checkpointed);
    }
    end = _segments.back()->next_offset();
    _durable = recovery_point{_segments.back()->base_offset(), _segments.back()->size(), end};
    if (!clean_shutdown && !(_checkpointed.next_offset == end && _checkpointed.position == _durable.position)) {
        // Recovery synced everything it kept, and may have kept damage because the
        // (never fsynced) state file vouched for it: record the durable point now,
        // so that a later crash cannot lose that evidence and cut what was kept.
        _checkpointed = _durable;
        _checkpoint.store(_checkpointed);
    }
    _sealed_bytes = 0;
    for (size_t i = 0; i + 1 < _segments.size(); ++i) _sealed_bytes += _segments[i]->size();
    _shared.claim(end, _segments.front()->base_offset(), _sealed_bytes + _segments.back()->size());

    // The shared state starts from the recovered partition (nothing of the
    // previous session's locks or points is trusted).
    std::memset(reinterpret_cast<uint8_t*>(_coord) + offsetof(partition_coordination, append_lock), 0,
                sizeof(partition_coordination) - offsetof(partition_coordination, append_lock));
    shared_mutex::init(_coord->append_lock);
    shared_mutex::init(_coord->retention_lock);
    shared_mutex::init(_coord->checkpoint_lock);
    shared_mutex::init(_coord->cleaner_lock);
    _seen_swaps = _shared.swap_count();  // (the segments were opened just now)
    _coord->flags = 0;
    _coord->handles = 0;
    _active_created_ns = wall_ns();
    _coord->durable.store({_durable.segment_base, _durable.position, _durable.next_offset});
    _coord->checkpointed = _checkpointed.next_offset >= 0 ? durable_point{_checkpointed.segment_base, _checkpointed.position,
                                                                          _checkpointed.next_offset}
                                                          : durable_point{-1, 0, -1};
    _coord->checkpoint_sequence = _checkpoint.sequence();
    _coord->generation += 1;
    commit_locked();
    _seen_generation = _coord->generation;
    _coord->epoch = _session.epoch;
    __atomic_store_n(&_coord->init_state, partition_ready, __ATOMIC_RELEASE);
}

void partition::commit_locked() {
    _coord->committed.store(_segments.back()->cursor(_active_created_ns));
    _seen_commit_seq = __atomic_add_fetch(&_coord->commit_seq, 1, __ATOMIC_RELEASE);
}

void partition::catch_up_locked() {
    revalidate_swapped_locked();
    if (__atomic_load_n(&_coord->commit_seq, __ATOMIC_ACQUIRE) == _seen_commit_seq) return;
    // Without the append lock the committed point read may be overtaken before
    // the folder is listed (rolls, then retention removing what was the active
    // segment): try again with a fresh one, then adopt under the lock, where
    // the committed segment cannot go.
    for (int attempt = 0; attempt < 3; ++attempt) {
        uint64_t seq = __atomic_load_n(&_coord->commit_seq, __ATOMIC_ACQUIRE);
        uint64_t generation = __atomic_load_n(&_coord->generation, __ATOMIC_ACQUIRE);
        committed_point c;
        if (!_coord->committed.load(&c)) break;  // a dead writer's half commit: the lock's repair completes it
        try {
            adopt_view_locked(c, generation != _seen_generation);
        } catch (const error& e) {
            if (e.code() != errc::not_found) throw;
            continue;
        }
        _seen_generation = generation;
        _seen_commit_seq = seq;  // (a later commit is adopted at the next call)
        return;
    }
    append_guard lock(*this);
}

void partition::adopt_view_locked(const committed_point& c, bool relist) {
    if (relist || _segments.empty() || _segments.back()->base_offset() != c.segment_base) {
        // The segments from the published start to the committed one: a newer
        // file is a roll in progress, an older one a retention pass unlinking.
        int64_t start = _shared.start_offset();
        std::vector<std::shared_ptr<segment>> next;
        for (int64_t b : list_segment_bases(_dir)) {
            if (b > c.segment_base || (b < start && b != c.segment_base)) continue;
            auto it = std::find_if(_segments.begin(), _segments.end(),
                                   [&](const std::shared_ptr<segment>& s) { return s->base_offset() == b; });
            if (it != _segments.end()) {
                next.push_back(*it);
                continue;
            }
            try {
                // Creating nothing: a segment another handle's retention unlinks
                // after this listing must not come back empty.
                next.push_back(segment::open_existing(_dir, b));
            } catch (const error& e) {
                if (e.code() != errc::not_found) throw;  // unlinked by retention meanwhile
                // The active segment is never retention's; its index files may be
                // missing (its creator died between the files): create those.
                if (b == c.segment_base && path_exists(_dir + "/" + segment_file_stem(b) + ".log"))
                    next.push_back(segment::open(_dir, b, false));
                // A sealed segment whose indexes a compaction swap has unlinked
                // and not yet renamed back (or a dead cleaner left missing):
                // read-only, creating nothing; its next base is taken below.
                else if (b != c.segment_base) {
                    try {
                        next.push_back(segment::open(_dir, b, true));
                    } catch (const error& e2) {
                        if (e2.code() != errc::not_found) throw;
                    }
                }
            }
        }
        // A retention pass that ran meanwhile published its start before it
        // unlinked: what lies below the start now is gone (or going).
        int64_t start_now = _shared.start_offset();
        next.erase(std::remove_if(next.begin(), next.end(),
                                  [&](const std::shared_ptr<segment>& s) {
                                      return s->base_offset() < start_now && s->base_offset() != c.segment_base;
                                  }),
                   next.end());
        if (next.empty() || next.back()->base_offset() != c.segment_base)
            throw error(errc::not_found, "the active segment " + segment_file_stem(c.segment_base) +
                                             ".log is missing from " + _dir + " (the topic was deleted?)");
        for (size_t i = 0; i + 1 < next.size(); ++i)
            if (next[i]->next_offset() != next[i + 1]->base_offset()) next[i]->adopt_sealed(next[i + 1]->base_offset());
        _segments = std::move(next);
        _sealed_bytes = 0;
        for (size_t i = 0; i + 1 < _segments.size(); ++i) _sealed_bytes += _segments[i]->size();
    }
    _segments.back()->adopt(c);
    _active_created_ns = c.active_created_ns;
}

partition::append_guard::append_guard(partition& p) : _lock(*p._append_lock, [&p] { p.repair_append_locked(); }) {
    p.catch_up_under_append_lock();  // (nothing to adopt after a repair: it committed)
}

void partition::catch_up_under_append_lock() {
    uint64_t seq = __atomic_load_n(&_coord->commit_seq, __ATOMIC_ACQUIRE);
    if (seq == _seen_commit_seq) return;
    uint64_t generation = __atomic_load_n(&_coord->generation, __ATOMIC_ACQUIRE);
    adopt_view_locked(_coord->committed.load_unlocked(), generation != _seen_generation);
    _seen_generation = generation;
    _seen_commit_seq = seq;
}

void partition::repair_append_locked() {
    // The previous holder of the append lock died (a process killed, a thread
    // gone). What it may have left, from its intent: a frame written in part or
    // in whole but not committed, a half-written committed point, a roll
    // stopped anywhere. Everything here is idempotent: a repairer that dies
    // leaves the same intent to the next holder.
    append_intent intent = _coord->intent;
    committed_point c = _coord->committed.load_unlocked();
    bool torn_commit = _coord->committed.torn();
    uint32_t kind = __atomic_load_n(&_coord->intent.kind, __ATOMIC_ACQUIRE);
    std::string what = "nothing in progress";
    if (kind == append_intent::frame && !(c.segment_base == intent.segment_base && c.next_offset >= intent.next_offset &&
                                          !torn_commit)) {
        c = intent.before;
        adopt_view_locked(c, true);
        auto seg = _segments.back();
        frame_header h;
        if (seg->base_offset() == intent.segment_base && seg->frame_whole_at(intent.position, intent.length,
                                                                             intent.base_offset, &h)) {
            // Whole: keep it, as crash recovery keeps a whole frame it finds. Its
            // index entries may be missing or half written: write them again.
            seg->note_appended(h, intent.position);
            what = "kept the dead writer's whole frame at offsets " + std::to_string(h.base_offset) + ".." +
                   std::to_string(h.next_offset() - 1);
        } else {
            // Torn: never acknowledged, published or flushed. Zero it and cut the
            // index entries past the committed point; the next append writes
            // the same offsets at the same position (FORMAT.md §8.2: offsets
            // nobody was given are not "handed out").
            seg->zero_range(intent.position, intent.length);
            seg->index().truncate_files_to({c.offset_entries, c.time_entries, c.bytes_since_entry, c.index_max_timestamp});
            what = "zeroed the dead writer's torn frame at position " + std::to_string(intent.position);
        }
    } else if (kind == append_intent::roll && c.segment_base != intent.next_offset) {
        // The roll stopped before its commit: seal the old segment (again), create
        // the new one unless it exists, then commit it.
        c = torn_commit ? intent.before : c;
        adopt_view_locked(c, true);
        auto old = _segments.back();
        old->seal();
        old->datasync();
        std::shared_ptr<segment> next;
        try {
            next = segment::create(_dir, intent.next_offset);
        } catch (const error& e) {
            if (e.code() != errc::already_exists) throw;
            next = segment::open(_dir, intent.next_offset, false);
        }
        fsync_directory(_dir);
        _sealed_bytes += old->size();
        _segments.push_back(std::move(next));
        _active_created_ns = wall_ns();
        __atomic_add_fetch(&_coord->generation, 1, __ATOMIC_RELEASE);
        what = "finished the dead writer's roll to segment " + segment_file_stem(intent.next_offset);
    } else {
        if (torn_commit) c = intent.before;  // (a commit is only torn with an intent)
        adopt_view_locked(c, true);
    }
    __atomic_add_fetch(&_coord->generation, 1, __ATOMIC_RELEASE);  // every handle re-lists
    commit_locked();
    _seen_generation = __atomic_load_n(&_coord->generation, __ATOMIC_ACQUIRE);
    __atomic_store_n(&_coord->intent.kind, append_intent::idle, __ATOMIC_RELEASE);
    // A dead appender may have committed without publishing ("interval", "none").
    if (_config.durability != durability_mode::fsync) publish_locked(_segments.back()->next_offset());
    std::lock_guard<std::mutex> g(_damage_mu);
    _events.push_back({_segments.back()->log_path(), _segments.back()->size(), 0, _segments.back()->next_offset(),
                       "a writer died holding the append lock (pid " + std::to_string(intent.pid) + "): " + what,
                       "repair"});
}

void partition::check_sealed_segment(size_t i, bool report_damage_found) {
    auto& s = _segments[i];
    uint64_t bytes = s->log_file().size();
    int64_t next_base = _segments[i + 1]->base_offset();
    walk_policy quick;
    quick.keep_below = INT64_MAX;  // a sealed segment is never cut here (recover() decides past the checkpoint)
    quick.expected_end = next_base;
    quick.offset_bound = next_base;
    // Walk (headers only) the frames behind the last index entry: they must end
    // exactly where the next segment begins, and their timestamps complete the
    // segment's max timestamp if the time index lost its tail.
    scan_result tail;
    bool sane = s->index_matches_log(bytes);
    if (sane) {
        offset_index_entry e = s->index().last_offset_entry();
        tail = s->scan(e.position, s->base_offset() + e.relative_offset, quick);
        sane = tail.damage.empty() && tail.valid_bytes == bytes && tail.next_offset == next_base;
    }
    if (!sane) {
        s->index().reset();
        walk_policy full = quick;
        full.rebuild_index = true;
        tail = s->scan(0, s->base_offset(), full);
        if (tail.damage.empty()) _events.push_back({s->log_path(), 0, 0, -1, "index rebuilt", "index"});
        if (report_damage_found)
            for (auto& d : tail.damage) report_damage(*s, d, d.end_offset >= 0 ? d.end_offset : next_base);
    }
    s->set_end(bytes, next_base, tail.max_timestamp);
    s->seal();  // a rebuilt (or tail-less) time index gets its final entry back: readers rely on it
}

void partition::report_damage(const segment& s, const damaged_bytes& d, int64_t end_offset) {
    // No bytes left at all: the offsets were handed out and their data is gone.
    bool gone = d.bytes == 0;
    std::string why = gone ? std::string("offsets missing from the segment (") + describe(d.why) + ")" : describe(d.why);
    _events.push_back({s.log_path(), d.position, 0, d.start_offset, why, gone ? "lost" : "damaged", d.bytes, end_offset});
    note_damage({s.log_path(), d.position, d.bytes, d.start_offset, end_offset, why});
}

void partition::note_damage(const damaged_range& d) {
    std::lock_guard<std::mutex> g(_damage_mu);
    for (auto& known : _damage)
        if (known.segment == d.segment && known.position == d.position && known.start_offset == d.start_offset) return;
    _damage.push_back(d);
}

std::vector<recovery_event> partition::recovery_events() {
    std::lock_guard<std::mutex> g(_damage_mu);
    return _events;
}

std::vector<damaged_range> partition::damaged_ranges() {
    std::lock_guard<std::mutex> g(_damage_mu);
    std::vector<damaged_range> out = _damage;
    std::sort(out.begin(), out.end(),
              [](const damaged_range& a, const damaged_range& b) { return a.start_offset < b.start_offset; });
    return out;
}

void partition::start_new_segment_at(int64_t base) {
    // The active segment ends in damage, or offsets past its end were handed out
    // before: appends go on in a new segment whose base keeps them unique, and the
    // damaged bytes stay where they are for `tidelog verify --repair`.
    auto old = _segments.back();
    if (old->size() == 0) {
        old->remove_files();
        _segments.pop_back();
    } else {
        old->seal();
        old->datasync();
        old->index().sync();
    }
    _segments.push_back(segment::create(_dir, base));
    fsync_directory(_dir);
}

std::optional<damaged_bytes> partition::recover(size_t first, uint64_t trusted_end, bool clean_shutdown,
                                                int64_t keep_below, const std::optional<recovery_point>& checkpoint) {
    std::optional<damaged_bytes> last_tail;
    for (size_t i = first; i < _segments.size(); ++i) {
        auto& s = _segments[i];
        bool last = i + 1 == _segments.size();
        int64_t next_base = last ? INT64_MAX : _segments[i + 1]->base_offset();
        uint64_t file_bytes = s->log_file().size();
        uint64_t start = 0, verify_from = 0;
        int64_t start_offset = s->base_offset();
        int64_t max_before = INT64_MIN;  // the running max timestamp through the frame at start
        if (i == first && trusted_end > 0) {
            // Resume near the trusted point; index entries after it are rebuilt anyway.
            // An index failing its check is dropped. The walk resumes at the last
            // *time* entry (at or before the last offset entry): its timestamp is the
            // running max through its frame, which the rebuilt entries must carry on
            // from; resuming later would forget the frames in between. Frames before
            // the last offset entry were checked before: their headers are walked,
            // their CRCs are not recomputed.
            uint64_t limit = std::min(trusted_end, file_bytes);
            // Without a usable index the walk starts at 0, but what precedes the
            // trusted point is vouched for: only its headers are walked.
            verify_from = limit;
            s->index().truncate_from(static_cast<uint32_t>(std::min<uint64_t>(limit, UINT32_MAX)));
            if (s->index_matches_log(limit)) {
                offset_index_entry e = s->index().last_offset_entry();
                time_index_entry t = s->index().last_time_entry();
                start = std::min<uint64_t>(e.position, t.position);
                start_offset = s->base_offset() + (t.position < e.position ? t.relative_offset : e.relative_offset);
                verify_from = e.position;
                max_before = t.timestamp;
            }
        }
        s->index().truncate_from(static_cast<uint32_t>(std::min<uint64_t>(start, UINT32_MAX)));
        s->index().raise_max_timestamp(max_before);
        walk_policy policy;
        policy.verify_from = std::max(start, verify_from);
        policy.rebuild_index = true;
        policy.keep_below = keep_below;
        policy.expected_end = last ? (keep_below == INT64_MAX ? INT64_MIN : keep_below) : next_base;
        policy.offset_bound = next_base;
        if (checkpoint && s->base_offset() == checkpoint->segment_base) {
            // Frames before the checkpoint's position end at or before it (it is a frame
            // boundary): a flipped length or count that says otherwise is damage.
            policy.trusted_position = checkpoint->position;
            policy.trusted_offset = checkpoint->next_offset;
        }
        // A clean close trimmed the last segment: zeros before its end are a lost
        // sector, not the end (after a crash they may be the preallocated tail).
        policy.zeros_may_hide_frames = last && clean_shutdown;
        scan_result r = s->scan(start, start_offset, policy);
        for (size_t k = 0; k < r.damage.size(); ++k) {
            if (last && r.damaged_tail && k + 1 == r.damage.size()) {
                last_tail = r.damage[k];  // its end offset is decided by the caller
                continue;
            }
            report_damage(*s, r.damage[k], r.damage[k].end_offset >= 0 ? r.damage[k].end_offset : next_base);
        }
        bool torn = !r.damaged_tail && r.stop != frame_check::end_of_data;
        // A sealed segment that ends before the next one begins, past the durable point.
        bool short_of_next = !last && !torn && !r.damaged_tail && r.next_offset != next_base;
        uint64_t keep_bytes = r.damaged_tail ? r.data_end : r.valid_bytes;
        s->set_end(keep_bytes, last || r.damaged_tail ? (last ? r.next_offset : next_base) : r.next_offset,
                   r.max_timestamp);
        if (torn)
            _events.push_back({s->log_path(), r.valid_bytes, r.file_bytes - r.valid_bytes, r.next_offset,
                               describe(r.stop)});
        // After a crash, the zeros that end the log may be a lost sector with
        // older, never-acknowledged frames behind it: a later append that
        // rewrote only the sector would bring them back. Cut them off (the
        // datasync below makes the cut durable before anything is appended).
        if (keep_bytes < r.file_bytes && (torn || !last || !clean_shutdown || r.damaged_tail)) s->truncate_to(keep_bytes);
        if (torn || short_of_next) {
            // Past the durable point the log is a prefix: nothing after a torn
            // frame was acknowledged, and keeping it would break its writers' order.
            for (size_t j = i + 1; j < _segments.size(); ++j) {
                auto& later = _segments[j];
                _events.push_back({later->log_path(), 0, later->log_file().size(), later->base_offset(),
                                   torn ? "segment after a truncated one" : "segment does not continue the previous one"});
                later->remove_files();
            }
            _segments.resize(i + 1);
            fsync_directory(_dir);
            break;
        }
    }
    // Recovered frames become visible (in "fsync" mode: count as durable) only
    // once they are on disk: they may have been in the page cache only.
    for (size_t i = first; i < _segments.size(); ++i) {
        _segments[i]->datasync();
        _segments[i]->index().sync();
    }
    return last_tail;
}

void partition::publish_locked(int64_t visible_end) {
    if (_shared.publish(visible_end, _sealed_bytes + _segments.back()->size()) && _notifier) _notifier->bump();
}

std::vector<append_result> partition::append(const append_request* requests, size_t count) {
    if (_read_only) throw error(errc::read_only, "partition opened read-only: " + _dir);
    if (count == 0) return {};
    std::vector<uint32_t> payload_crcs(count);
    std::vector<uint64_t> payload_lengths(count);
    for (size_t k = 0; k < count; ++k) {
        const append_request& req = requests[k];
        uint32_t crc = 0;
        uint64_t length = 0;
        for (int i = 0; i < req.piece_count; ++i) {
            crc = crc32c_extend(crc, req.pieces[i].iov_base, req.pieces[i].iov_len);
            length += req.pieces[i].iov_len;
        }
        if (length + frame_header_bytes + body_alignment > max_frame_bytes)
            throw error(errc::too_large, "batch of " + std::to_string(length) + " bytes is over the 2 GiB frame limit");
        if (req.min_timestamp > req.max_timestamp) throw error(errc::invalid_argument, "min_timestamp > max_timestamp");
        if (req.record_count == 0) throw error(errc::invalid_argument, "a frame holds at least one record");
        payload_crcs[k] = crc;
        payload_lengths[k] = length;
    }

    std::vector<append_result> results(count);
    std::lock_guard<std::mutex> g(_mu);
    if (_closed) throw error(errc::closed, "partition is closed: " + _dir);
    append_guard lock(*this);
    if (__atomic_load_n(&_coord->flags, __ATOMIC_ACQUIRE) & partition_flag_deleted)
        throw error(errc::topic_deleted, "the topic was deleted: " + _dir);
    kill_point("append.locked");
    std::shared_ptr<segment> seg;
    // The frames of one call get consecutive offsets: nothing else appends in between.
    size_t written = 0;
    try {
    for (size_t k = 0; k < count; ++k) {
        const append_request& req = requests[k];
        seg = _segments.back();
        uint64_t upper = align_up(frame_header_bytes + body_alignment + payload_lengths[k], frame_alignment);
        bool too_big = seg->size() > 0 && seg->size() + upper > _config.segment_bytes;
        bool too_old = _config.segment_ms >= 0 && seg->size() > 0 &&
                       wall_ns() - _active_created_ns >= _config.segment_ms * ns_per_ms;
        // Index entries hold offsets relative to the segment base as uint32.
        bool offsets_full = seg->next_offset() - seg->base_offset() + int64_t{req.record_count} > int64_t{UINT32_MAX};
        if (too_big || too_old || offsets_full) {
            roll_locked();
            seg = _segments.back();
        }
        uint64_t position = seg->size();
        frame_header h{};
        h.magic = frame_magic;
        h.version = frame_version;
        h.header_length = frame_header_bytes;
        h.codec = req.codec;
        h.flags = req.flags;
        h.base_offset = seg->next_offset();
        h.record_count = req.record_count;
        h.last_offset_delta = req.record_count - 1;  // dense: one record per offset
        h.schema_id = req.schema_id;
        h.min_timestamp = req.min_timestamp;
        h.max_timestamp = req.max_timestamp;
        h.payload_length = payload_lengths[k];
        h.payload_offset = frame_header_bytes;
        if (req.body_offset >= 0 && req.body_offset % frame_alignment == 0) {
            uint64_t body = position + frame_header_bytes + static_cast<uint64_t>(req.body_offset);
            h.payload_offset += static_cast<uint32_t>((body_alignment - body % body_alignment) % body_alignment);
        }
        h.crc = frame_crc_with_payload_crc(h, payload_crcs[k]);
        // If this thread dies before the commit below, the next holder of the
        // append lock finds the frame from here (repair_append_locked).
        append_intent& intent = _coord->intent;
        intent.pid = static_cast<int32_t>(current_pid());
        intent.before = _coord->committed.load_unlocked();
        intent.segment_base = seg->base_offset();
        intent.position = position;
        intent.length = h.frame_length();
        intent.base_offset = h.base_offset;
        intent.next_offset = h.next_offset();
        __atomic_store_n(&intent.kind, append_intent::frame, __ATOMIC_RELEASE);
        kill_point("append.intent");
        seg->append(h, req.pieces, req.piece_count);  // (kill point append.mid_pwritev inside)
        kill_point("append.after_pwritev");
        if (kill_point_due("append.mid_commit")) {
            __atomic_store_n(&_coord->committed.seq, _coord->committed.seq | 1u, __ATOMIC_RELEASE);
            _coord->committed.value.position = 0xDEAD;  // half written
            kill_now();
        }
        commit_locked();
        kill_point("append.committed");
        __atomic_store_n(&intent.kind, append_intent::idle, __ATOMIC_RELEASE);
        _committer->count_append(1, h.frame_length());
        results[k] = {h.base_offset, 0, h.crc};
        ++written;
    }
    } catch (...) {
        // An I/O error part way: the frames already written stay (they are valid
        // and hold offsets); account for them as for a whole append, then report.
        if (written > 0) {
            seg = _segments.back();
            recovery_point point{seg->base_offset(), seg->size(), seg->next_offset()};
            if (_config.durability != durability_mode::fsync) publish_locked(point.next_offset);
            _committer->note_written(this, seg, point,
                                     _config.durability == durability_mode::none ? committer::no_deadline
                                                                                 : monotonic_ns());
        }
        throw;
    }

    int64_t end = seg->next_offset();
    recovery_point point{seg->base_offset(), seg->size(), end};
    uint64_t ticket = 0;
    int64_t now = monotonic_ns();
    switch (_config.durability) {
        case durability_mode::fsync:
            ticket = _committer->note_written(this, seg, point, now);
            break;
        case durability_mode::interval:
            publish_locked(end);
            ticket = _committer->note_written(this, seg, point, now + _config.flush_interval_ms * ns_per_ms);
            break;
        case durability_mode::none:
            publish_locked(end);
            // Synced only by flush_all, a roll or close: nothing to wait for.
            _committer->note_written(this, seg, point, committer::no_deadline);
            break;
    }
    kill_point("append.published");
    for (auto& r : results) r.ticket = ticket;
    return results;
}

append_result partition::append(const append_request& request) { return append(&request, 1).front(); }

void partition::roll_locked() {
    auto old = _segments.back();
    append_intent& intent = _coord->intent;
    intent.pid = static_cast<int32_t>(current_pid());
    intent.before = _coord->committed.load_unlocked();
    intent.segment_base = old->base_offset();
    intent.position = old->size();
    intent.length = 0;
    intent.base_offset = old->base_offset();
    intent.next_offset = old->next_offset();
    __atomic_store_n(&intent.kind, append_intent::roll, __ATOMIC_RELEASE);
    kill_point("roll.intent");
    old->seal();
    kill_point("roll.sealed");
    // Even in "none" mode a sealed segment is flushed soon (as Kafka flushes on
    // roll), so the recovery checkpoint can move past it.
    _committer->note_written(this, old, {old->base_offset(), old->size(), old->next_offset()},
                             monotonic_ns());
    auto next = segment::create(_dir, old->next_offset());
    kill_point("roll.created");
    fsync_directory(_dir);
    kill_point("roll.dir_synced");
    _sealed_bytes += old->size();
    _segments.push_back(std::move(next));
    _active_created_ns = wall_ns();
    _seen_generation = __atomic_add_fetch(&_coord->generation, 1, __ATOMIC_RELEASE);
    commit_locked();
    __atomic_store_n(&intent.kind, append_intent::idle, __ATOMIC_RELEASE);
}

namespace {
/// Points in log order: by offset, then (a roll with no frame after it) by segment and position.
bool point_before(const durable_point& a, const recovery_point& b) {
    if (a.next_offset != b.next_offset) return a.next_offset < b.next_offset;
    if (a.segment_base != b.segment_base) return a.segment_base < b.segment_base;
    return a.position < b.position;
}
}  // namespace

void partition::on_durable(const recovery_point& point) {
    // The flusher holds the log's flush lock: the only writer of the durable point.
    durable_point d = _coord->durable.load_unlocked();
    if (_coord->durable.torn() || point_before(d, point)) {
        _coord->durable.store({point.segment_base, point.position, point.next_offset});
        d = {point.segment_base, point.position, point.next_offset};
    }
    {
        std::lock_guard<std::mutex> g(_durable_mu);
        if (d.next_offset >= _durable.next_offset) _durable = {d.segment_base, d.position, d.next_offset};
    }
    if (_config.durability == durability_mode::fsync && _shared.publish(d.next_offset, _shared.visible_bytes()) &&
        _notifier)
        _notifier->bump();
}

bool partition::durable_covers(const recovery_point& point) const {
    durable_point d;
    return _coord->durable.load(&d, 100) && !point_before(d, point);
}

void partition::adopt_durable() {
    durable_point d;
    if (!_coord->durable.load(&d, 100)) return;
    std::lock_guard<std::mutex> g(_durable_mu);
    if (d.next_offset >= _durable.next_offset) _durable = {d.segment_base, d.position, d.next_offset};
}

bool partition::plan_flush(const recovery_point& pending, recovery_point* target,
                           std::vector<std::shared_ptr<segment>>* to_sync) {
    durable_point d = _coord->durable.load_unlocked();  // (flush lock held: stable)
    bool torn = _coord->durable.torn();
    if (!torn && !point_before(d, pending)) {
        std::lock_guard<std::mutex> g(_durable_mu);
        if (d.next_offset >= _durable.next_offset) _durable = {d.segment_base, d.position, d.next_offset};
        return true;
    }
    // Flush as far as every handle committed in the same segment: one
    // fdatasync covers every process's frames in the file.
    *target = pending;
    committed_point c;
    if (_coord->committed.load(&c, 100) && c.segment_base == pending.segment_base &&
        point_before(durable_point{pending.segment_base, pending.position, pending.next_offset},
                     recovery_point{c.segment_base, c.position, c.next_offset}))
        *target = {c.segment_base, c.position, c.next_offset};
    if (torn || d.segment_base != target->segment_base) {
        // Segments sealed since the durable point, by any handle: they are
        // synced too before the durable point may pass them.
        std::lock_guard<std::mutex> g(_mu);
        try {
            catch_up_locked();
        } catch (const error&) {
        }
        int64_t from = torn ? INT64_MIN : d.segment_base;
        for (auto& s : _segments)
            if (s->base_offset() >= from && s->base_offset() <= target->segment_base) to_sync->push_back(s);
    }
    return false;
}

void partition::mark_deleted() {
    if (_read_only) throw error(errc::read_only, "partition opened read-only: " + _dir);
    std::lock_guard<std::mutex> g(_mu);
    append_guard lock(*this);
    __atomic_or_fetch(&_coord->flags, partition_flag_deleted, __ATOMIC_RELEASE);
    __atomic_add_fetch(&_coord->commit_seq, 1, __ATOMIC_RELEASE);
}

bool partition::write_checkpoint() {
    // The durable point first: what this call stores covers every
    // acknowledgement made before it (the point only grows). Then the segments
    // (_mu), then the checkpoint lock: nothing is taken while it is held.
    durable_point d;
    if (!_coord->durable.load(&d)) return false;
    std::vector<std::shared_ptr<segment>> segs;
    {
        std::lock_guard<std::mutex> g(_mu);
        if (_closed) return false;
        catch_up_locked();
        segs = _segments;
    }
    shared_mutex_guard lock = checkpoint_guard();
    kill_point("checkpoint.locked");
    recovery_point point{d.segment_base, d.position, d.next_offset};
    durable_point done = _coord->checkpointed;
    if (!point_before(done, point)) return false;
    // Index entries below the checkpoint are trusted at recovery: make them
    // durable first. (The list holds every segment up to the committed one,
    // which is at or past d; one missing was removed by retention.)
    for (auto& s : segs)
        if (s->base_offset() >= done.segment_base && s->base_offset() <= d.segment_base) s->index().sync();
    return store_checkpoint_locked(point);
}

shared_mutex_guard partition::checkpoint_guard() {
    // A store may be torn: its slot is ignored at load, and numbering goes on
    // from the newest valid one, so the next store overwrites the torn slot.
    return shared_mutex_guard(*_checkpoint_lock,
                              [this] { _coord->checkpoint_sequence = _checkpoint.reload_sequence(); });
}

bool partition::store_checkpoint_locked(const recovery_point& point) {
    // Only forward: a partition's last handle stores its own synced end at
    // close, which the shared durable point may not have reached, and another
    // handle may reopen, append and checkpoint further before a closer stores.
    if (!point_before(_coord->checkpointed, point)) return false;
    _checkpoint.store(point, _coord->checkpoint_sequence + 1);
    _coord->checkpoint_sequence = _checkpoint.sequence();
    _coord->checkpointed = {point.segment_base, point.position, point.next_offset};
    _checkpointed = point;
    return true;
}

void partition::enforce_retention() {
    if (!has_retention()) return;
    // One pass at a time across handles: a pass that chose newer segments while
    // another still unlinks older ones could make its unlink durable first,
    // leaving a hole at the front after a power cut.
    std::lock_guard<std::mutex> one_pass(_retention_mu);
    shared_mutex_guard one_pass_anywhere(*_retention_lock, [this] { finish_retention_locked(); });
    std::vector<std::shared_ptr<segment>> doomed;
    {
        std::lock_guard<std::mutex> g(_mu);
        if (_closed) return;
        append_guard lock(*this);
        uint64_t total = 0;
        for (auto& s : _segments) total += s->size();
        int64_t now = wall_ns();
        const int64_t retention_ms = _retention_ms.load(std::memory_order_relaxed);
        const int64_t retention_bytes = _retention_bytes.load(std::memory_order_relaxed);
        size_t count = 0;
        while (count + 1 < _segments.size()) {
            auto& front = _segments[count];
            bool expired = retention_ms >= 0 && front->max_timestamp() != INT64_MIN &&
                           front->max_timestamp() < now - retention_ms * ns_per_ms;
            bool oversize = retention_bytes >= 0 && total - front->size() >= static_cast<uint64_t>(retention_bytes);
            if (!expired && !oversize) break;
            total -= front->size();
            ++count;
        }
        if (count == 0) return;
        // A doomed segment the durable point has not passed may hold unsynced
        // frames. Once it leaves the list no flush syncs it (plan_flush syncs
        // the listed segments), yet the durable point may pass it; a power cut
        // before its unlink is durable would bring it back short, and recovery
        // would cut every later, acknowledged segment as not continuing it.
        // So it is synced here, before any handle can see it gone (a failure
        // throws with nothing removed). Retention rarely reaches segments this
        // recent: only with a retention of about one segment.
        durable_point d;
        bool durable_known = _coord->durable.load(&d, 100);
        for (size_t k = 0; k < count; ++k)
            if (!durable_known || _segments[k]->base_offset() >= d.segment_base) _segments[k]->datasync();
        for (size_t k = 0; k < count; ++k) {
            _sealed_bytes -= _segments[k]->size();
            doomed.push_back(_segments[k]);
        }
        _segments.erase(_segments.begin(), _segments.begin() + static_cast<std::ptrdiff_t>(count));
        _coord->retention_start = _segments.front()->base_offset();
        __atomic_store_n(&_coord->retention_phase, 1u, __ATOMIC_RELEASE);
        _shared.publish_start(_segments.front()->base_offset());
        _seen_generation = __atomic_add_fetch(&_coord->generation, 1, __ATOMIC_RELEASE);
        _seen_commit_seq = __atomic_add_fetch(&_coord->commit_seq, 1, __ATOMIC_RELEASE);
    }
    // Readers holding a mapping keep the inode alive; unlink is safe. The folder
    // is fsynced after each segment, oldest first: a power cut must not keep a
    // later unlink and lose an earlier one (a hole at the front of the log).
    kill_point("retention.published");
    for (auto& s : doomed) {
        s->remove_files();
        fsync_directory(_dir);
        _committer->count_segment_deleted();
        kill_point("retention.unlinked_one");
    }
    __atomic_store_n(&_coord->retention_phase, 0u, __ATOMIC_RELEASE);
}

void partition::finish_retention_locked() {
    // A pass died unlinking: the segments below its start are gone for every
    // handle already (the start was published); remove what is left, oldest first.
    if (__atomic_load_n(&_coord->retention_phase, __ATOMIC_ACQUIRE) == 0) return;
    int64_t start = _coord->retention_start;
    for (int64_t b : list_segment_bases(_dir)) {
        if (b >= start) break;
        auto s = segment::open(_dir, b, true);
        s->remove_files();
        fsync_directory(_dir);
    }
    __atomic_store_n(&_coord->retention_phase, 0u, __ATOMIC_RELEASE);
}

std::vector<std::shared_ptr<segment>> partition::snapshot(int64_t* visible_end) {
    std::lock_guard<std::mutex> g(_mu);
    if (_read_only) {
        _shared.retry_open();
        *visible_end = _shared.visible_end();
        // The listing is redone when retention moved the start, or when a walk
        // runs off the end of the last known segment (see frames()): not per read.
        if (_segments.empty() || _shared.start_offset() != _listed_at_start) {
            refresh_segments_locked();
            _listed_at_start = _shared.start_offset();
        }
        revalidate_swapped_locked();
    } else {
        // The end first: everything below it is committed, so the view adopted
        // next covers it (other handles may have appended, rolled, deleted).
        *visible_end = _shared.visible_end();
        catch_up_locked();
    }
    return _segments;
}

std::shared_ptr<segment> partition::segment_holding(int64_t offset, int64_t* next_base) {
    int64_t visible;
    auto segs = snapshot(&visible);
    auto it = std::upper_bound(segs.begin(), segs.end(), offset,
                               [](int64_t o, const std::shared_ptr<segment>& s) { return o < s->base_offset(); });
    if (next_base) *next_base = it == segs.end() ? INT64_MAX : (*it)->base_offset();
    return it == segs.begin() ? nullptr : *(it - 1);
}

int64_t partition::start_offset() {
    if (_shared.available()) return _shared.start_offset();
    int64_t visible;
    auto segs = snapshot(&visible);
    return segs.empty() ? 0 : segs.front()->base_offset();
}

bool partition::published_offsets(int64_t* start, int64_t* end) const noexcept {
    if (!_shared.available()) return false;
    *start = _shared.start_offset();
    *end = _shared.visible_end();
    return true;
}

int64_t partition::end_offset() {
    if (_read_only) _shared.retry_open();
    return _shared.visible_end();
}

int64_t partition::written_end() {
    if (_read_only) throw error(errc::invalid_argument, "written_end needs a read-write handle");
    committed_point c;
    if (_coord->committed.load(&c)) return c.next_offset;
    // A dead writer's half commit: the append lock's repair completes it.
    append_guard lock(*this);
    return _coord->committed.load_unlocked().next_offset;
}

int64_t partition::written_end_nowait() {
    if (_read_only) throw error(errc::invalid_argument, "written_end needs a read-write handle");
    committed_point c;
    return _coord->committed.load(&c, 100) ? c.next_offset : -1;
}

uint64_t partition::size_bytes() {
    if (_read_only) return _shared.visible_bytes();
    int64_t visible;
    auto segs = snapshot(&visible);
    uint64_t total = 0;
    for (auto& s : segs) total += s->size();
    return total;
}

size_t partition::segment_count() {
    if (_read_only) {  // not a hot path: list the folder now rather than at the next walk
        std::lock_guard<std::mutex> g(_mu);
        refresh_segments_locked();
        return _segments.size();
    }
    int64_t visible;
    return snapshot(&visible).size();
}

bool partition::wait_for_data(int64_t known_end, int64_t timeout_ns) {
    int64_t deadline = timeout_ns < 0 ? INT64_MAX : monotonic_ns() + timeout_ns;
    while (true) {
        uint32_t seq = _shared.sequence();
        if (end_offset() > known_end) return true;
        int64_t left = timeout_ns < 0 ? -1 : deadline - monotonic_ns();
        if (timeout_ns >= 0 && left <= 0) return false;
        if (!_shared.available()) {
            // No writer has created the state file yet: poll it at a coarse interval.
            struct timespec ts{0, 10'000'000};
            ::nanosleep(&ts, nullptr);
            _shared.retry_open();
            continue;
        }
        _shared.wait_change(seq, left);
    }
}

damaged_range partition::locate_damage(segment& s, const std::shared_ptr<mapped_region>& known_region,
                                       uint64_t pos, int64_t offset, frame_check why, int64_t segment_end_offset,
                                       int64_t visible, uint64_t* resume_position, int64_t* resume_offset) {
    uint64_t file_end = _read_only ? s.log_file().size() : s.size();
    std::shared_ptr<mapped_region> region = known_region;
    if (!region || region->length() < file_end) {
        try {
            region = s.mapping(file_end);
        } catch (const error& err) {
            if (err.code() != errc::corrupt) throw;
        }
    }
    const uint8_t* data = region ? region->data() : nullptr;
    if (region) file_end = std::min<uint64_t>(file_end, region->length());
    damaged_range d{s.log_path(), pos, 0, offset, segment_end_offset, describe(why)};
    if (pos >= file_end || !data) {
        // The segment's frames end before its offsets do (data lost in a crash
        // or a damaged tail cut away): the rest of its offsets are a gap.
        d.end_offset = segment_end_offset != INT64_MAX ? segment_end_offset : visible;
        d.reason = "offsets missing from the segment";
        *resume_position = UINT64_MAX;
        *resume_offset = d.end_offset;
        return d;
    }
    // A frame whose header is intact and whose successor lines up: only its
    // payload is damaged, and it holds exactly the offsets its header says.
    int64_t bound = std::min(segment_end_offset, visible);
    frame_header h;
    if (only_this_frame_damaged(data, pos, file_end, offset, bound, &h,
                                segment_end_offset != INT64_MAX ? segment_end_offset : visible)) {
        d.bytes = h.frame_length();
        d.end_offset = h.next_offset();
        *resume_position = pos + h.frame_length();
        *resume_offset = h.next_offset();
        return d;
    }
    resync_hit hit = find_next_intact_frame(data, pos + frame_alignment, file_end, offset, bound, visible);
    if (hit.found) {
        d.bytes = hit.position - pos;
        d.end_offset = hit.header.base_offset;
        *resume_position = hit.position;
        *resume_offset = hit.header.base_offset;
        return d;
    }
    // The last visible frame, whose successor may still be in flight: its header
    // (which failed its CRC) is believed only when it ends exactly there, and
    // only in the segment that holds the visible end: in an earlier segment a
    // header claiming offsets up to `visible` would skip the next segments'
    // intact frames (a skip never leaves [segment base, next segment base)).
    if (visible <= segment_end_offset && check_header(data + pos, file_end - pos) == frame_check::ok) {
        h = load_header(data + pos);
        if (h.base_offset == offset && h.next_offset() == visible) {
            d.bytes = h.frame_length();
            d.end_offset = visible;
            *resume_position = UINT64_MAX;
            *resume_offset = visible;
            return d;
        }
    }
    d.end_offset = segment_end_offset != INT64_MAX ? segment_end_offset : visible;
    d.bytes = segment_end_offset != INT64_MAX ? end_of_nonzero(data, pos, file_end) - pos : file_end - pos;
    *resume_position = UINT64_MAX;
    *resume_offset = d.end_offset;
    return d;
}

std::vector<frame_ref> partition::frames(int64_t start_offset, int64_t end_offset, int64_t min_timestamp,
                                         int64_t max_timestamp, size_t max_frames,
                                         std::vector<damaged_range>* skipped,
                                         const std::vector<frame_key>* excluded) {
    std::vector<frame_ref> out;
    int64_t visible;
    auto segs = snapshot(&visible);
    end_offset = std::min(end_offset, visible);
    if (segs.empty() || start_offset >= end_offset || max_frames == 0) return out;
    start_offset = std::max(start_offset, segs.front()->base_offset());

    // First segment: the one holding start_offset. Segments whose frames are all
    // older than min_timestamp are not skipped on their time index's word alone:
    // the walk below enters each through time_entry_for, which costs a few header
    // reads at its end, and a damaged last entry cannot hide a whole segment.
    size_t i = 0;
    while (i + 1 < segs.size() && segs[i + 1]->base_offset() <= start_offset) ++i;

    // Damage met on the way: raised when it holds offsets the caller asked for,
    // skipped (and reported) when the caller skips damage, stepped over silently
    // when it lies before start_offset (a walk from an earlier index entry).
    auto on_damage = [&](const damaged_range& d) {
        note_damage(d);
        // Nothing the caller asked for is missing (or nothing at all: bytes between
        // two intact frames, such as a stray copy of one of them).
        if (d.end_offset <= start_offset || d.end_offset <= d.start_offset) return;
        if (!skipped) throw corrupt_frame(_dir, d);
        skipped->push_back(d);
    };

    for (; i < segs.size() && out.size() < max_frames; ++i) {
        auto s = segs[i];  // a copy: a reader may replace segs while walking
        if (_read_only) s->index().refresh();
        int64_t segment_end = i + 1 < segs.size() ? segs[i + 1]->base_offset() : INT64_MAX;
        int64_t limit = std::min(end_offset, segment_end);
        offset_index_entry e{0, 0};
        if (start_offset > s->base_offset())
            e = s->index().entry_for_offset(static_cast<uint32_t>(start_offset - s->base_offset()));
        int64_t claimed_max = INT64_MAX;  // what the time index says of the first frame's max timestamp
        if (min_timestamp > INT64_MIN) {
            time_index_entry t = s->index().time_entry_for(min_timestamp);
            if (t.position > e.position) {
                e = {t.relative_offset, t.position};
                claimed_max = t.timestamp;
            }
        }
        uint64_t pos = e.position;
        int64_t offset = s->base_offset() + e.relative_offset;
        bool from_index = pos > 0;
        bool last = i + 1 == segs.size();
        uint64_t known_size = 0;  // readers: the file size last seen, re-read only when a header lies past it
        std::shared_ptr<mapped_region> region;
        uint64_t walk_end = 0;  // the bytes the walk reads headers in: the mapping, and a reader's known size
        auto set_walk_end = [&] {
            walk_end = region ? region->length() : 0;
            if (_read_only && last) walk_end = std::min(walk_end, known_size);
        };
        // The last frame walked past on its header alone (not asked for, so not
        // CRC-checked): when damage follows it, its header may be the damage.
        bool prev_unchecked = false;
        uint64_t prev_pos = 0;
        int64_t prev_offset = 0;
        bool rewalk = false;        // the walk stopped to map more of the file, or to start again elsewhere
        bool segment_done = false;  // the rest of the segment is damaged
        auto wanted = [&](const frame_header& h) {
            return h.next_offset() > start_offset && h.max_timestamp >= min_timestamp &&
                   h.min_timestamp < max_timestamp &&
                   !(excluded && std::binary_search(excluded->begin(), excluded->end(), frame_key{h.base_offset, h.crc}));
        };
        auto go_on_at = [&](uint64_t at, int64_t off) {
            pos = at;
            offset = off;
            rewalk = true;
            return walk_resume::stop_here();
        };
        bool admitted_wanted = false;  // admit() to on_frame(): the frame is one the caller asked for
        auto admit = [&](uint64_t at, const frame_header& h) {
            if (from_index && h.max_timestamp > claimed_max) return frame_admission::reject;  // the index misleads
            from_index = false;
            admitted_wanted = wanted(h);
            return admitted_wanted && !s->verified(at, at + h.frame_length()) ? frame_admission::take_after_crc
                                                                               : frame_admission::take;
        };
        auto on_frame = [&](uint64_t at, const frame_header& h, bool crc_checked) {
            uint64_t frame_end = at + h.frame_length();
            if (crc_checked) s->mark_verified(at, frame_end);
            bool w = admitted_wanted;
            if (w) out.push_back(frame_ref{region, at, h});
            prev_unchecked = !w && !s->verified(at, frame_end);
            prev_pos = at;
            prev_offset = h.base_offset;
            offset = h.next_offset();
            pos = frame_end;
            return offset < limit && out.size() < max_frames;
        };
        auto on_bad = [&](uint64_t at, int64_t off, frame_check c) -> walk_resume {
            // Out of mapped (or, in a reader, known) bytes: map more, or find the next segment.
            if (at + frame_header_bytes > walk_end) return go_on_at(at, off);
            if (region && c == frame_check::truncated &&
                load_header(region->data() + at).frame_length() <= max_frame_bytes) {
                uint64_t need = at + load_header(region->data() + at).frame_length();
                try {
                    region = s->mapping(need);
                } catch (const error& err) {
                    if (err.code() != errc::corrupt) throw;
                }
                set_walk_end();
                if (need <= walk_end) return go_on_at(at, off);
            }
            pos = at;
            offset = off;
            if (from_index) {
                // Indexes are derived data: if one misleads, walk the segment from its start.
                from_index = false;
                return go_on_at(0, s->base_offset());
            }
            // Damage: find where it ends and the next intact frame begins.
            if (prev_unchecked && region && c != frame_check::bad_crc) {
                const uint8_t* q = region->data() + prev_pos;
                if (check_frame(q, region->length() - prev_pos) == frame_check::bad_crc) {
                    pos = prev_pos;  // its count or length sent the walk astray
                    offset = prev_offset;
                    c = frame_check::bad_crc;
                }
            }
            prev_unchecked = false;
            uint64_t resume_position;
            int64_t resume_offset;
            damaged_range d = locate_damage(*s, region, pos, offset, c, segment_end, visible, &resume_position,
                                            &resume_offset);
            on_damage(d);
            offset = resume_offset;
            if (resume_position == UINT64_MAX) {  // the rest of the segment is damaged
                segment_done = true;
                return walk_resume::stop_here();
            }
            pos = resume_position;
            if (region && region->length() < pos + frame_header_bytes) region.reset();
            return go_on_at(pos, offset);
        };
        auto visitor = make_frame_visitor(admit, on_frame, on_bad);
        while (offset < limit && out.size() < max_frames && !segment_done) {
            // An index entry past the end of the file is damage, not a roll: walk
            // the segment from its start instead.
            if (from_index &&
                pos + frame_header_bytes > (_read_only ? (known_size = s->log_file().size()) : s->size())) {
                from_index = false;
                pos = 0;
                offset = s->base_offset();
                continue;
            }
            // Only read a header we know was written: its offset is below the
            // published end and below the next segment's base.
            if (_read_only && last && pos + frame_header_bytes > known_size &&
                pos + frame_header_bytes > (known_size = s->log_file().size())) {
                // A reader's walk ran off its last known segment while the published
                // end is further: the writer rolled (it trimmed this file before it
                // published anything in the next one, which is why the size check
                // is safe). List the folder again and continue in the next segment.
                {
                    std::lock_guard<std::mutex> g(_mu);
                    refresh_segments_locked();
                    segs = _segments;
                }
                auto next = std::find_if(segs.begin(), segs.end(),
                                         [&](const std::shared_ptr<segment>& x) { return x->base_offset() >= offset; });
                if (next == segs.end()) return out;  // not there (a stale end from a crashed writer)
                // Retention removed the segments from here on while this walk was
                // in an older one (it publishes the new start before unlinking):
                // what was read so far is whole; the rest is gone, not damaged.
                if ((*next)->base_offset() > offset && offset < _shared.start_offset()) return out;
                if ((*next)->base_offset() > offset)  // the writer started past a gap (FORMAT.md §8)
                    on_damage({s->log_path(), pos, 0, offset, (*next)->base_offset(), "offsets missing from the segment"});
                i = static_cast<size_t>(next - segs.begin()) - 1;  // the for loop moves to it
                break;
            }
            if (!region || region->length() < pos + frame_header_bytes) {
                try {
                    region = s->mapping(pos + frame_header_bytes);
                } catch (const error& err) {
                    if (err.code() != errc::corrupt) throw;
                    region.reset();
                }
            }
            set_walk_end();
            rewalk = false;
            if (!region) {
                walk_end = UINT64_MAX;  // nothing to map more of: the damage path decides
                on_bad(pos, offset, frame_check::truncated);
            } else {
                walk_frames(region->data(), walk_end, pos, offset, segment_end, visitor, check_order::offsets_first);
            }
            if (!rewalk) break;
        }
        if (offset >= end_offset) break;
    }
    return out;
}

int64_t partition::offset_for_time(int64_t timestamp) {
    // Walk (by header) the frames the time index points at until one reaches timestamp.
    int64_t visible;
    auto segs = snapshot(&visible);
    int64_t start = segs.empty() ? 0 : segs.front()->base_offset();
    while (true) {
        std::vector<damaged_range> skipped;  // a time lookup steps over damage
        auto batch = frames(start, visible, timestamp, INT64_MAX, 64, &skipped);
        if (batch.empty()) {
            if (!skipped.empty() && skipped.back().end_offset < visible) {
                start = skipped.back().end_offset;
                continue;
            }
            return visible;
        }
        for (auto& f : batch)
            if (f.header.max_timestamp >= timestamp) return std::max(start, f.header.base_offset);
        start = batch.back().header.next_offset();
    }
}

void partition::flush() {
    if (_read_only) return;
    _committer->flush_all();
}

void partition::close() {
    if (_read_only || _closed) return;
    {
        std::lock_guard<std::mutex> g(_mu);
        _closed = true;
    }
    try {
        _committer->flush_all();
    } catch (...) {
        // Even when the log failed, the committer must forget this partition.
        _committer->unregister_partition(this);
        throw;
    }
    _committer->unregister_partition(this);
    recovery_point point{-1, 0, -1};
    {
        std::lock_guard<std::mutex> g(_mu);
        append_guard lock(*this);
        if (__atomic_sub_fetch(&_coord->handles, 1, __ATOMIC_SEQ_CST) == 0 &&
            !(__atomic_load_n(&_coord->flags, __ATOMIC_ACQUIRE) & partition_flag_deleted)) {
            // The partition's last handle of the session: trim the active segment
            // and sync everything, so a clean close is trusted at the next open.
            auto& last = _segments.back();
            last->seal();
            kill_point("close.sealed");
            commit_locked();
            for (auto& s : _segments) {
                s->datasync();
                s->index().sync();
            }
            point = {last->base_offset(), last->size(), last->next_offset()};
        }
    }
    if (point.next_offset >= 0) {
        shared_mutex_guard lock = checkpoint_guard();
        store_checkpoint_locked(point);
    }
    _checkpoint.close();
    for (auto& s : _segments) s->close();
}

void partition::revalidate_swapped_locked() {
    uint32_t swaps = _shared.swap_count();  // read first: a later swap is seen next time
    if (swaps == _seen_swaps || !_shared.available()) return;
    // A read-write handle's last segment is the active one, never swapped; a
    // reader's list may end in a segment sealed since, which is checked too.
    size_t checked = _read_only ? _segments.size() : _segments.size() - std::min<size_t>(_segments.size(), 1);
    bool changed = false;
    for (size_t i = 0; i < checked; ++i) {
        auto& s = _segments[i];
        if (s->log_is_current()) continue;
        try {
            if (i + 1 < _segments.size())
                s = segment::open_sealed(_dir, s->base_offset(), _segments[i + 1]->base_offset());
            else
                s = segment::open(_dir, s->base_offset(), true);
            changed = true;
        } catch (const error& e) {
            if (e.code() != errc::not_found) throw;  // deleted by retention meanwhile: the next listing drops it
        }
    }
    if (changed && !_read_only) {
        _sealed_bytes = 0;
        for (size_t i = 0; i + 1 < _segments.size(); ++i) _sealed_bytes += _segments[i]->size();
    }
    _seen_swaps = swaps;
}

void* partition::cleaner_lock_memory() {
    if (_read_only) throw error(errc::read_only, "partition opened read-only: " + _dir);
    return _coord->cleaner_lock;
}

std::vector<partition::compaction_segment_info> partition::compaction_segments() {
    if (_read_only) throw error(errc::read_only, "partition opened read-only: " + _dir);
    int64_t visible;
    auto segs = snapshot(&visible);
    int64_t checkpoint_segment;
    {
        // The file is the truth (after a clean open the shared point starts
        // unset until the next store).
        shared_mutex_guard lock = checkpoint_guard();
        checkpoint_segment = _coord->checkpointed.segment_base;
        if (std::optional<recovery_point> cp = _checkpoint.load())
            checkpoint_segment = std::max(checkpoint_segment, cp->segment_base);
    }
    std::vector<compaction_segment_info> out;
    for (size_t i = 0; i < segs.size(); ++i) {
        auto& s = segs[i];
        bool sealed = i + 1 < segs.size();
        int64_t end = sealed ? segs[i + 1]->base_offset() : s->next_offset();
        // Wholly below the checkpoint's segment: durable, and never walked by a
        // recovery that trusts a position inside it.
        bool cleanable = sealed && checkpoint_segment >= 0 && end <= checkpoint_segment;
        out.push_back({s->base_offset(), end, s->size(), s->max_timestamp(), cleanable, s->compacted()});
    }
    return out;
}

void partition::recover_compaction_leftovers() {
    if (_read_only) throw error(errc::read_only, "partition opened read-only: " + _dir);
    // Under the retention locks: a segment retention deletes meanwhile must not
    // get its indexes back.
    std::lock_guard<std::mutex> one_pass(_retention_mu);
    shared_mutex_guard retention(*_retention_lock, [this] { finish_retention_locked(); });
    bool changed = remove_cleaned_files(_dir);
    if (changed) fsync_directory(_dir);
    std::vector<std::shared_ptr<segment>> segs;
    {
        std::lock_guard<std::mutex> g(_mu);
        if (_closed) throw error(errc::closed, "partition is closed: " + _dir);
        catch_up_locked();
        segs = _segments;
    }
    bool rebuilt = false;
    for (size_t i = 0; i + 1 < segs.size(); ++i) {
        int64_t base = segs[i]->base_offset(), next_base = segs[i + 1]->base_offset();
        std::string stem = _dir + "/" + segment_file_stem(base);
        // Missing (or emptied) index files are what a swap leaves; other damage
        // to an index is the open's to find (§8.2 step 3), and only costs reads a walk.
        auto whole = [](const std::string& path) {
            struct stat st;
            return ::stat(path.c_str(), &st) == 0 && st.st_size > 0;
        };
        if (whole(stem + ".index") && whole(stem + ".timeindex")) continue;
        std::shared_ptr<segment> current;
        try {
            current = segment::open_sealed(_dir, base, next_base);
        } catch (const error& e) {
            if (e.code() != errc::not_found) throw;
            continue;
        }
        uint64_t bytes = current->log_file().size();
        // Built under temporary names and renamed into place: readers see the
        // old (missing) index or the whole new one.
        auto region = bytes ? current->mapping(bytes) : nullptr;
        write_indexes_for_log(_dir, base, region ? region->data() : nullptr, bytes, segment_rewriter::cleaned_suffix());
        fsync_directory(_dir);
        rename_file(stem + ".index" + segment_rewriter::cleaned_suffix(), stem + ".index");
        rename_file(stem + ".timeindex" + segment_rewriter::cleaned_suffix(), stem + ".timeindex");
        fsync_directory(_dir);
        rebuilt = true;
        std::lock_guard<std::mutex> g(_damage_mu);
        _events.push_back({current->log_path(), 0, 0, -1, "index rebuilt (left missing by a compaction)", "index"});
    }
    // Every handle reopens them (their objects hold the files that were replaced).
    if (rebuilt) _shared.note_swap();
}

bool partition::swap_in(segment_rewriter& w, uint64_t* bytes_before) {
    if (_read_only) throw error(errc::read_only, "partition opened read-only: " + _dir);
    int64_t base = w.base_offset();
    std::string stem = _dir + "/" + segment_file_stem(base);
    const std::string& cleaned = segment_rewriter::cleaned_suffix();
    // The retention locks for the renames: a segment retention deleted (or is
    // deleting) is never brought back. A few folder fsyncs long.
    std::lock_guard<std::mutex> one_pass(_retention_mu);
    shared_mutex_guard retention(*_retention_lock, [this] { finish_retention_locked(); });
    {
        std::lock_guard<std::mutex> g(_mu);
        if (_closed) throw error(errc::closed, "partition is closed: " + _dir);
        catch_up_locked();
        auto it = std::find_if(_segments.begin(), _segments.end(),
                               [&](const std::shared_ptr<segment>& s) { return s->base_offset() == base; });
        bool present = it != _segments.end() && it + 1 != _segments.end() &&
                       (*(it + 1))->base_offset() == w.end_offset() && base >= _shared.start_offset();
        if (!present) {
            w.abort();
            return false;
        }
        *bytes_before = (*it)->size();
    }
    kill_point("compact.written");
    // 2. The old indexes go first: from here to step 4 the log has none
    // (rebuilt if a crash stops the swap), never one of the other version.
    remove_file(stem + ".index");
    remove_file(stem + ".timeindex");
    fsync_directory(_dir);
    kill_point("compact.indexes_unlinked");
    // 3. The commit point.
    rename_file(stem + ".log" + cleaned, stem + ".log");
    fsync_directory(_dir);
    kill_point("compact.renamed");
    // 4.
    rename_file(stem + ".index" + cleaned, stem + ".index");
    rename_file(stem + ".timeindex" + cleaned, stem + ".timeindex");
    fsync_directory(_dir);
    {
        std::lock_guard<std::mutex> g(_mu);
        auto it = std::find_if(_segments.begin(), _segments.end(),
                               [&](const std::shared_ptr<segment>& s) { return s->base_offset() == base; });
        if (it != _segments.end() && it + 1 != _segments.end()) {
            *it = segment::open_sealed(_dir, base, (*(it + 1))->base_offset());
            _sealed_bytes = 0;
            for (size_t i = 0; i + 1 < _segments.size(); ++i) _sealed_bytes += _segments[i]->size();
        }
        _shared.note_swap();
        revalidate_swapped_locked();
    }
    kill_point("compact.done");
    return true;
}

void partition::remove_files() {
    std::lock_guard<std::mutex> g(_mu);
    for (auto& s : _segments) s->remove_files();
    remove_file(_dir + "/state");
    remove_file(_dir + "/recovery-checkpoint");
}

}  // namespace tidelog
