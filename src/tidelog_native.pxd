# C++ declarations of the native core (native/). C-prefixed names keep them
# apart from the Python classes in _core.pyx, as pyarrow's libarrow.pxd does.
from libc.stdint cimport int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libcpp cimport bool as cbool
from libcpp.memory cimport shared_ptr, unique_ptr
from libcpp.string cimport string
from libcpp.utility cimport pair
from libcpp.vector cimport vector

cdef extern from "<sys/uio.h>":
    cdef struct iovec:
        void* iov_base
        size_t iov_len

# The native error codes (errc) are declared in tidelog/_core.pxd (ErrorCode),
# where Cython also makes them a Python enum.
cdef extern from "error_bridge.h" namespace "tidelog":
    void raise_native_error()
    void set_error_factory(object factory)

cdef extern from "crc32c.h" namespace "tidelog" nogil:
    uint32_t crc32c_extend(uint32_t crc, const void* data, size_t length)
    uint32_t crc32c_extend_portable(uint32_t crc, const void* data, size_t length)
    cbool crc32c_hardware_available()

cdef extern from "column_stats.h" namespace "tidelog" nogil:
    cdef struct int64_span:
        int64_t min
        int64_t max
        cbool ordered
    int64_span int64_span_of(const int64_t* values, size_t count)
    # (one template in C++; Cython picks the overload of each fused specialization)
    cbool min_max_of(const int8_t* values, size_t count, int8_t* min, int8_t* max, cbool* nan)
    cbool min_max_of(const int16_t* values, size_t count, int16_t* min, int16_t* max, cbool* nan)
    cbool min_max_of(const int32_t* values, size_t count, int32_t* min, int32_t* max, cbool* nan)
    cbool min_max_of(const int64_t* values, size_t count, int64_t* min, int64_t* max, cbool* nan)
    cbool min_max_of(const uint8_t* values, size_t count, uint8_t* min, uint8_t* max, cbool* nan)
    cbool min_max_of(const uint16_t* values, size_t count, uint16_t* min, uint16_t* max, cbool* nan)
    cbool min_max_of(const uint32_t* values, size_t count, uint32_t* min, uint32_t* max, cbool* nan)
    cbool min_max_of(const uint64_t* values, size_t count, uint64_t* min, uint64_t* max, cbool* nan)
    cbool min_max_of(const float* values, size_t count, float* min, float* max, cbool* nan)
    cbool min_max_of(const double* values, size_t count, double* min, double* max, cbool* nan)

cdef extern from "cpu_features.h" namespace "tidelog" nogil:
    cbool cpu_has_avx2()

cdef extern from "wake_deferral.h" namespace "tidelog" nogil:
    void defer_wakes()
    int wake_deferred(bint yield_if_woken)
    bint wakes_pending()
    bint deferring_wakes()

cdef extern from "murmur2.h" namespace "tidelog" nogil:
    int murmur2(const void* data, size_t length)
    void partition_fixed_width(const unsigned char* values, size_t count, size_t width, int partitions, int* out)
    void partition_binary32(const int* offsets, const unsigned char* data, size_t count, int partitions, int* out)
    void partition_binary64(const int64_t* offsets, const unsigned char* data, size_t count, int partitions, int* out)
    cbool group_rows_by_partition(const int* ids, size_t count, int partitions, int64_t* order, int64_t* counts)

cdef extern from "mapped_region.h" namespace "tidelog" nogil:
    cdef cppclass CMappedRegion "tidelog::mapped_region":
        const unsigned char* data()
        uint64_t length()
        const string& path()

cdef extern from "frame.h" namespace "tidelog" nogil:
    cdef cppclass CFrameHeader "tidelog::frame_header":
        uint32_t magic
        uint32_t crc
        uint16_t version
        uint16_t header_length
        uint16_t codec
        uint16_t flags
        int64_t base_offset
        uint32_t record_count
        uint32_t schema_id
        int64_t min_timestamp
        int64_t max_timestamp
        uint64_t payload_length
        uint32_t payload_offset
        int64_t next_offset()  # one past the frame's last offset
    int check_frame(const unsigned char* p, uint64_t available)

cdef extern from "segment.h" namespace "tidelog" nogil:
    cdef cppclass CFrameRef "tidelog::frame_ref":
        shared_ptr[CMappedRegion] region
        uint64_t position
        CFrameHeader header
        const unsigned char* payload()
        cbool sparse()
        const unsigned char* offset_block()
        uint64_t block_length()
        int64_t delete_horizon_ns()
        const unsigned char* arrow_payload()
        uint64_t arrow_payload_length()

cdef extern from "committer.h" namespace "tidelog" nogil:
    cdef cppclass CCommitterStats "tidelog::committer_stats":
        uint64_t appends
        uint64_t frames
        uint64_t bytes
        uint64_t fdatasyncs
        uint64_t flushes
        uint64_t durable_waits
        uint64_t checkpoints
        uint64_t segments_deleted

cdef extern from "partition.h" namespace "tidelog" nogil:
    cdef enum class CDurability "tidelog::durability_mode"(unsigned char):
        none "tidelog::durability_mode::none"
        interval "tidelog::durability_mode::interval"
        fsync "tidelog::durability_mode::fsync"

    cdef cppclass CPartitionConfig "tidelog::partition_config":
        uint64_t segment_bytes
        int64_t segment_ms
        int64_t retention_bytes
        int64_t retention_ms
        CDurability durability
        int64_t flush_interval_ms

    cdef cppclass CAppendRequest "tidelog::append_request":
        const iovec* pieces
        int piece_count
        uint32_t record_count
        int64_t min_timestamp
        int64_t max_timestamp
        uint16_t codec
        uint16_t flags
        uint32_t schema_id
        int64_t body_offset

    cdef cppclass CAppendResult "tidelog::append_result":
        int64_t base_offset
        uint64_t ticket
        uint32_t crc

    cdef cppclass CFrameKey "tidelog::frame_key":
        int64_t base_offset
        uint32_t crc

    cdef cppclass CRecoveryEvent "tidelog::recovery_event":
        string file
        uint64_t position
        uint64_t bytes_dropped
        int64_t first_offset_dropped
        string reason
        string kind
        uint64_t bytes_damaged
        int64_t end_offset

    cdef cppclass CDamagedRange "tidelog::damaged_range":
        string segment
        uint64_t position
        uint64_t bytes
        int64_t start_offset
        int64_t end_offset
        string reason

    cdef cppclass CPartition "tidelog::partition":
        CAppendResult append(const CAppendRequest& request) except +raise_native_error
        vector[CAppendResult] append(const CAppendRequest* requests, size_t count) except +raise_native_error
        vector[CFrameRef] frames(int64_t start_offset, int64_t end_offset, int64_t min_timestamp,
                                 int64_t max_timestamp, size_t max_frames,
                                 vector[CDamagedRange]* skipped, const vector[CFrameKey]* excluded) except +raise_native_error
        vector[CDamagedRange] damaged_ranges() except +raise_native_error
        int64_t offset_for_time(int64_t timestamp) except +raise_native_error
        int64_t start_offset() except +raise_native_error
        cbool published_offsets(int64_t* start, int64_t* end)
        int64_t end_offset() except +raise_native_error
        int64_t written_end() except +raise_native_error
        int64_t written_end_nowait() except +raise_native_error
        uint64_t size_bytes() except +raise_native_error
        size_t segment_count() except +raise_native_error
        cbool wait_for_data(int64_t known_end, int64_t timeout_ns) except +raise_native_error
        void enforce_retention() except +raise_native_error
        cbool write_checkpoint() except +raise_native_error
        void set_retention(int64_t retention_bytes, int64_t retention_ms)
        void flush() except +raise_native_error
        void close() except +raise_native_error
        void remove_files() except +raise_native_error
        void mark_deleted() except +raise_native_error
        vector[CRecoveryEvent] recovery_events()

cdef extern from "segment_rewriter.h" namespace "tidelog" nogil:
    cdef cppclass CRewriteFrame "tidelog::rewrite_frame":
        int64_t base_offset
        int64_t span
        uint32_t record_count
        const uint32_t* offset_deltas
        int64_t delete_horizon_ns
        int64_t min_timestamp
        int64_t max_timestamp
        uint16_t codec
        uint16_t flags
        uint32_t schema_id
        const iovec* pieces
        int piece_count
        int64_t body_offset

    cdef cppclass CSegmentRewriter "tidelog::segment_rewriter":
        void append(const CRewriteFrame& f) except +raise_native_error
        void append_empty(int64_t base_offset, int64_t span, int64_t timestamp) except +raise_native_error
        void abort() except +raise_native_error
        int64_t base_offset()
        int64_t end_offset()
        int64_t next_offset()
        uint64_t bytes()
        cbool finished()

cdef extern from "compaction_session.h" namespace "tidelog" nogil:
    cdef cppclass CCompactionSegmentInfo "tidelog::partition::compaction_segment_info":
        int64_t base_offset
        int64_t end_offset
        uint64_t bytes
        int64_t max_timestamp
        cbool cleanable
        cbool compacted

    cdef cppclass CSwapStats "tidelog::compaction_session::swap_stats":
        uint64_t bytes_before
        uint64_t bytes_after
        cbool swapped

    cdef cppclass CCompactionSession "tidelog::compaction_session":
        @staticmethod
        unique_ptr[CCompactionSession] open(CPartition& p, cbool wait, cbool (*interrupted)(void*) noexcept nogil,
                                            void* interrupted_arg) except +raise_native_error
        vector[CCompactionSegmentInfo] segments() except +raise_native_error
        shared_ptr[CSegmentRewriter] rewrite(int64_t base_offset) except +raise_native_error
        CSwapStats commit(CSegmentRewriter& w) except +raise_native_error
        void release() except +raise_native_error
        cbool held()

cdef extern from "partition_reader.h" namespace "tidelog" nogil:
    cdef cppclass CPartitionReader "tidelog::partition_reader":
        CPartitionReader(CPartition& p, int64_t offset)
        size_t read(size_t max_frames, uint64_t max_bytes, vector[CFrameRef]* out,
                    vector[CDamagedRange]* skipped) except +raise_native_error
        size_t read_held(size_t max_frames, uint64_t max_bytes, vector[CFrameRef]* out) except +raise_native_error
        void seek(int64_t offset)
        int64_t position()

cdef extern from "log_core.h" namespace "tidelog" nogil:
    cdef cppclass CLogCore "tidelog::log_core":
        CLogCore(const string& path, cbool read_only, cbool exclusive) except +raise_native_error
        cbool read_only()
        cbool was_clean()
        unique_ptr[CPartition] open_partition(const string& dir, const CPartitionConfig& config) except +raise_native_error
        CCommitterStats stats()
        uint64_t session_fdatasyncs()
        uint64_t session_flushes()
        uint32_t notify_sequence()
        void wake_waiters()
        cbool wait_notify(uint32_t seen, int64_t timeout_ns) except +raise_native_error
        cbool spin_notify(uint32_t seen, int64_t spin_ns) except +raise_native_error
        void flush_all() except +raise_native_error
        void wait_durable(uint64_t ticket, cbool announced, cbool (*interrupted)(void*) noexcept nogil,
                          void* interrupted_arg) except +raise_native_error
        cbool is_durable(uint64_t ticket)
        void announce()
        void retract()
        void close() except +raise_native_error

cdef extern from "record_builder.h" namespace "tidelog" nogil:
    cdef cppclass CBinaryColumn "tidelog::binary_column":
        size_t count() const
        size_t null_count() const
        const vector[int]& offsets() const
        const vector[unsigned char]& data() const
        const vector[unsigned char]& validity() const

    cdef cppclass CRecordBuilder "tidelog::record_builder":
        CRecordBuilder()
        void reserve(size_t records, size_t bytes)
        void clear()
        void add(int64_t timestamp, const unsigned char* key, int64_t key_length, const unsigned char* value,
                 int64_t value_length) except +raise_native_error
        void add_header(const unsigned char* name, size_t name_length, const unsigned char* value,
                        int64_t value_length) except +raise_native_error
        size_t count() const
        size_t bytes() const
        int64_t min_timestamp() const
        int64_t max_timestamp() const
        const vector[int64_t]& timestamps() const
        const CBinaryColumn& keys() const
        const CBinaryColumn& values() const
        const vector[int]& header_offsets() const
        const CBinaryColumn& header_names() const
        const CBinaryColumn& header_values() const

cdef extern from "<string_view>" namespace "std" nogil:
    cdef cppclass string_view:
        string_view()
        string_view(const char* data, size_t size)
        size_t size() const
        const char* data() const
        cbool operator==(string_view) const

cdef extern from "<optional>" namespace "std" nogil:
    cdef cppclass optional_view "std::optional<std::string_view>":
        optional_view()
        optional_view(string_view value)

cdef extern from "durable_table.h" namespace "tidelog" nogil:
    cdef cppclass CTableSyncToken "tidelog::table_sync_token":
        uint64_t generation
        uint64_t end

    cdef cppclass CDurableTable "tidelog::durable_table":
        CDurableTable(const string& dir, cbool create) except +raise_native_error
        void lock(cbool (*interrupted)(void*) noexcept nogil, void* context) except +raise_native_error
        cbool try_lock() except +raise_native_error
        void unlock() except +raise_native_error
        cbool locked() const
        void refresh() except +raise_native_error
        const string* get(string_view key) except +raise_native_error
        vector[pair[string, string]] items(string_view prefix) except +raise_native_error
        CTableSyncToken put(const vector[pair[string_view, optional_view]]& changes) except +raise_native_error
        void sync(const CTableSyncToken& token) except +raise_native_error
        uint64_t change_counter() const
        size_t size() const
        uint64_t journal_bytes() const
        uint64_t generation() const
        void rewrite() except +raise_native_error
        void close() except +raise_native_error
        cbool is_open() const

cdef extern from "ofd_lock_file.h" namespace "tidelog" nogil:
    cdef cppclass COfdLockFile "tidelog::ofd_lock_file":
        COfdLockFile(const string& path) except +raise_native_error
        cbool lock(uint64_t byte, cbool exclusive, cbool wait) except +raise_native_error
        void unlock(uint64_t byte) except +raise_native_error
        cbool locked_elsewhere(uint64_t byte) except +raise_native_error
        int fd() const
        cbool is_open() const
        void close() except +raise_native_error

cdef extern from "key_hash.h" namespace "tidelog" nogil:
    cdef struct CKeyHash "tidelog::key_hash":
        uint64_t lo
        uint64_t hi
    void hash_fixed_width_keys_native "tidelog::hash_fixed_width_keys"(const unsigned char* values, size_t count, size_t width, CKeyHash* out)
    void hash_binary32_keys_native "tidelog::hash_binary32_keys"(const int* offsets, const unsigned char* data, size_t count, CKeyHash* out)
    void hash_binary64_keys_native "tidelog::hash_binary64_keys"(const int64_t* offsets, const unsigned char* data, size_t count, CKeyHash* out)

cdef extern from "offset_map.h" namespace "tidelog" nogil:
    cdef cppclass COffsetMap "tidelog::offset_map":
        COffsetMap(uint64_t budget_bytes, double max_load) except +raise_native_error
        uint64_t slots()
        uint64_t max_slots()
        uint64_t capacity()
        uint64_t size()
        cbool full()
        uint64_t memory_bytes()
        size_t put_many(const CKeyHash* keys, const int64_t* offsets, const unsigned char* skip, size_t n)
        void latest_many(const CKeyHash* keys, size_t n, int64_t* out)
        void clear()

cdef extern from "stream_index.h" namespace "tidelog" nogil:
    cdef cppclass CStreamEntry "tidelog::stream_entry":
        vector[int64_t] positions
        vector[uint64_t] id_hashes
        int64_t truncate_before
        cbool tombstoned
    cdef cppclass CStreamIndex "tidelog::stream_index":
        CStreamIndex()
        void add(string_view stream, int64_t position, uint64_t id_hash, int64_t version) except +raise_native_error
        void soft_delete(string_view stream, int64_t truncate_before, int64_t position) except +raise_native_error
        void tombstone(string_view stream, int64_t position) except +raise_native_error
        void advance(int64_t position)
        const CStreamEntry* find(string_view stream)
        int64_t last_version(string_view stream)
        int64_t through()
        uint64_t event_count()
        size_t stream_count()
        int64_t find_event(string_view stream, uint64_t id_hash, int64_t start)
        vector[string] live_streams(string_view prefix, cbool include_system) except +raise_native_error
        void save(const string& path, uint64_t identity) except +raise_native_error
        cbool load(const string& path, uint64_t identity) except +raise_native_error
        cbool parse(const unsigned char* data, size_t size, uint64_t identity) except +raise_native_error
        string serialize(uint64_t identity) except +raise_native_error
        void clear()
