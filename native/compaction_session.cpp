#include "compaction_session.h"

#include "errors.h"
#include "units.h"

namespace tidelog {

compaction_session::compaction_session(partition& p) : _p(p), _lock(p.cleaner_lock_memory()) {}

std::unique_ptr<compaction_session> compaction_session::open(partition& p, bool wait, bool (*interrupted)(void*),
                                                             void* interrupted_arg) {
    if (p.read_only()) throw error(errc::read_only, "partition opened read-only: " + p.dir());
    std::unique_ptr<compaction_session> s(new compaction_session(p));
    shared_mutex::lock_result r;
    if (!wait) {
        r = s->_lock.try_lock();
        if (!r.acquired) return nullptr;
    } else {
        // In slices, so that a waiting caller can be interrupted (Ctrl-C).
        while (!(r = s->_lock.lock_for(50 * ns_per_ms)).acquired)
            if (interrupted && interrupted(interrupted_arg))
                throw error(errc::interrupted, "interrupted while waiting for the cleaner lock of " + p.dir());
    }
    s->_held = true;
    try {
        // Every pass starts by recovering what an earlier cleaner left (a dead
        // one's too: acquired_after_owner_died needs nothing more than this).
        p.recover_compaction_leftovers();
        if (r.acquired_after_owner_died) s->_lock.mark_consistent();
    } catch (...) {
        if (r.acquired_after_owner_died) {
            try {
                s->_lock.mark_consistent();  // the next cleaner repairs again
            } catch (...) {
            }
        }
        s->_held = false;
        s->_lock.unlock();
        throw;
    }
    return s;
}

compaction_session::~compaction_session() {
    try {
        release();
    } catch (...) {
    }
}

std::vector<partition::compaction_segment_info> compaction_session::segments() {
    if (!_held) throw error(errc::closed, "the compaction pass is over");
    return _p.compaction_segments();
}

std::shared_ptr<segment_rewriter> compaction_session::rewrite(int64_t base_offset) {
    if (!_held) throw error(errc::closed, "the compaction pass is over");
    if (_current && !_current->finished()) _current->abort();
    _current.reset();
    for (auto& s : _p.compaction_segments()) {
        if (s.base_offset != base_offset) continue;
        if (!s.cleanable)
            throw error(errc::invalid_argument, "segment " + std::to_string(base_offset) +
                                                    " is not cleanable (the active segment, or not yet below the "
                                                    "recovery checkpoint)");
        _current = std::make_shared<segment_rewriter>(_p.dir(), s.base_offset, s.end_offset);
        return _current;
    }
    throw error(errc::invalid_argument, "no segment starts at offset " + std::to_string(base_offset));
}

compaction_session::swap_stats compaction_session::commit(segment_rewriter& w) {
    if (!_held) throw error(errc::closed, "the compaction pass is over");
    if (_current.get() != &w) throw error(errc::invalid_argument, "not this pass's rewrite in progress");
    swap_stats st;
    try {
        w.finish();
        st.bytes_after = w.bytes();
        st.swapped = _p.swap_in(w, &st.bytes_before);
    } catch (...) {
        // The segment stays whole (old or new: the swap's own leftovers are
        // the next pass's recovery); files of a rewrite never renamed go now.
        try {
            w.abort();
        } catch (...) {
        }
        _current.reset();
        throw;
    }
    if (!st.swapped) st.bytes_after = 0;
    _current.reset();
    return st;
}

void compaction_session::release() {
    if (!_held) return;
    _held = false;
    std::shared_ptr<segment_rewriter> current = std::move(_current);
    // The lock is released whatever the abort meets (an I/O error leaves
    // .cleaned files for the next pass): a robust mutex must never outlive
    // its holder's mapping of it (shared_mutex.h).
    try {
        if (current && !current->finished()) current->abort();
    } catch (...) {
        _lock.unlock();
        throw;
    }
    _lock.unlock();
}

}  // namespace tidelog
