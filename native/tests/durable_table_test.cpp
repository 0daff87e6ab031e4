// durable_table (native/durable_table.h): puts, deletes, two handles on one
// folder, the lock, rewrites, the preallocated journal and its end, torn tails,
// damage, limits, sync skipping, and a child process killed (kill points)
// inside a put or a rewrite.
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "durable_table.h"
#include "errors.h"
#include "file_io.h"
#include "test_util.h"

namespace {

using namespace tidelog;
using tidelog_test::temp_dir;
using change = durable_table::change;
namespace fs = std::filesystem;

std::vector<change> set(const std::string& k, const std::string& v) { return {{k, v}}; }
std::vector<change> del(const std::string& k) { return {{k, std::nullopt}}; }

std::string value_of(const durable_table& t, const std::string& k) {
    const std::string* v = t.get(k);
    return v ? *v : "<none>";
}

uint64_t file_size(const std::string& path) { return fs::file_size(path); }

void append_bytes(const std::string& path, const std::string& bytes) {
    std::ofstream f(path, std::ios::binary | std::ios::app);
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

/// Writes bytes at a position (inside the preallocated zone, as a put does).
void write_at(const std::string& path, uint64_t position, const std::string& bytes) {
    int fd = ::open(path.c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(position)),
              static_cast<ssize_t>(bytes.size()));
    ::close(fd);
}

std::string read_all(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

/// True when the file holds only zeros from `position` to its end.
bool zeros_from(const std::string& path, uint64_t position) {
    std::string all = read_all(path);
    return all.size() >= position && all.find_first_not_of('\0', position) == std::string::npos;
}

/// One encoded record (what a put of key=value with this sequence writes).
std::string record_of(uint64_t sequence, const std::string& key, const std::string& value, uint64_t vouched_end = 0) {
    std::string record;
    table_journal::encode_record(record, sequence, vouched_end, {{key, std::optional<std::string_view>(value)}});
    return record;
}

void flip_byte(const std::string& path, uint64_t position) {
    std::fstream f(path, std::ios::binary | std::ios::in | std::ios::out);
    f.seekg(static_cast<std::streamoff>(position));
    char c;
    f.get(c);
    f.seekp(static_cast<std::streamoff>(position));
    f.put(static_cast<char>(c ^ 0x40));
}

TEST(DurableTable, PutGetDeleteAndItems) {
    temp_dir d;
    durable_table t(d.sub("t"), true);
    EXPECT_EQ(t.size(), 0u);
    t.lock();
    t.refresh();
    t.put(std::vector<change>{{"a/1", std::string("one")}, {"a/2", std::string("two")}, {"b", std::string("")}});
    EXPECT_EQ(value_of(t, "a/1"), "one");
    EXPECT_EQ(value_of(t, "b"), "");
    t.put(del("a/1"));
    EXPECT_EQ(t.get("a/1"), nullptr);
    t.put(del("never-there"));
    auto items = t.items("a/");
    ASSERT_EQ(items.size(), 1u);
    EXPECT_EQ(items[0].first, "a/2");
    EXPECT_EQ(t.items("").size(), 2u);
    t.unlock();
    t.close();
    durable_table again(d.sub("t"), false);
    EXPECT_EQ(value_of(again, "a/2"), "two");
    EXPECT_EQ(again.get("a/1"), nullptr);
    EXPECT_EQ(again.size(), 2u);
}

TEST(DurableTable, OpenWithoutCreateNeedsATable) {
    temp_dir d;
    try {
        durable_table t(d.sub("missing"), false);
        FAIL() << "opened a missing table";
    } catch (const error& e) {
        EXPECT_EQ(e.code(), errc::not_found);
    }
    EXPECT_FALSE(fs::exists(d.sub("missing")));
}

TEST(DurableTable, TwoHandlesSeeEachOthersPutsAfterRefresh) {
    temp_dir d;
    durable_table a(d.sub("t"), true), b(d.sub("t"), true);
    uint64_t c0 = b.change_counter();
    a.lock();
    a.put(set("k", "from a"));
    a.unlock();
    EXPECT_NE(b.change_counter(), c0);  // lock-free: the shared page moved
    EXPECT_EQ(b.get("k"), nullptr);     // b's view is as of its last refresh
    b.lock();
    b.refresh();
    EXPECT_EQ(value_of(b, "k"), "from a");
    b.put(set("k", "from b"));
    b.unlock();
    a.lock();
    a.refresh();
    EXPECT_EQ(value_of(a, "k"), "from b");
    a.unlock();
}

TEST(DurableTable, TheLockExcludesOtherHandlesAndThreads) {
    temp_dir d;
    durable_table a(d.sub("t"), true), b(d.sub("t"), true);
    a.lock();
    EXPECT_FALSE(b.try_lock());
    std::atomic<bool> got{false};
    std::thread waiter([&] {
        durable_table c(d.sub("t"), false);  // opening takes the lock briefly: waits too
        c.lock();
        got = true;
        c.unlock();
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_FALSE(got.load());
    a.unlock();
    waiter.join();
    EXPECT_TRUE(got.load());
    EXPECT_TRUE(b.try_lock());
    b.unlock();
}

TEST(DurableTable, CallsOutsideTheContractAreTypedErrors) {
    temp_dir d;
    durable_table t(d.sub("t"), true);
    auto code_of = [](auto&& f) {
        try {
            f();
        } catch (const error& e) {
            return e.code();
        }
        return errc{};
    };
    EXPECT_EQ(code_of([&] { t.put(set("k", "v")); }), errc::invalid_argument);  // no lock
    EXPECT_EQ(code_of([&] { t.refresh(); }), errc::invalid_argument);
    EXPECT_EQ(code_of([&] { t.unlock(); }), errc::invalid_argument);
    t.lock();
    EXPECT_EQ(code_of([&] { t.lock(); }), errc::invalid_argument);
    EXPECT_EQ(code_of([&] { t.put(set("", "v")); }), errc::invalid_argument);
    EXPECT_EQ(code_of([&] { t.put(set(std::string(4097, 'k'), "v")); }), errc::too_large);
    t.put(set(std::string(4096, 'k'), "v"));  // the largest key
    EXPECT_EQ(code_of([&] { t.put(set("k", std::string((16u << 20) + 1, 'v'))); }), errc::too_large);
    std::string big((16u << 20) - 64, 'v');
    std::vector<change> over64;
    for (int i = 0; i < 4; ++i) over64.push_back({"k" + std::to_string(i), big});
    over64.push_back({"k9", std::string(1 << 20, 'x')});
    EXPECT_EQ(code_of([&] { t.put(over64); }), errc::too_large);
    EXPECT_EQ(t.size(), 1u);  // nothing of a refused put applied
    t.unlock();
    t.close();
    EXPECT_EQ(code_of([&] { t.lock(); }), errc::closed);
    EXPECT_EQ(code_of([&] { (void)t.get("k"); }), errc::closed);
}

TEST(DurableTable, RewriteKeepsTheDataAndOtherHandlesReread) {
    temp_dir d;
    durable_table a(d.sub("t"), true), b(d.sub("t"), true);
    a.lock();
    for (int i = 0; i < 200; ++i) a.put(set("k" + std::to_string(i % 10), std::string(100, 'a' + i % 26)));
    a.put(del("k3"));
    uint64_t before = a.journal_bytes();
    uint64_t generation = a.generation();
    a.rewrite();
    EXPECT_LT(a.journal_bytes(), before / 10);
    EXPECT_EQ(a.generation(), generation + 1);
    EXPECT_EQ(file_size(d.sub("t/journal")), a.journal_bytes());
    EXPECT_FALSE(fs::exists(d.sub("t/journal.new")));
    a.put(set("after", "rewrite"));
    a.unlock();
    b.lock();
    b.refresh();
    EXPECT_EQ(b.size(), 10u);
    EXPECT_EQ(b.get("k3"), nullptr);
    EXPECT_EQ(value_of(b, "k9"), std::string(100, 'a' + 199 % 26));
    EXPECT_EQ(value_of(b, "after"), "rewrite");
    b.put(set("from", "b"));
    b.unlock();
    durable_table c(d.sub("t"), false);
    EXPECT_EQ(c.size(), 11u);
}

TEST(DurableTable, TheJournalIsRewrittenWhenItOutgrowsItsData) {
    temp_dir d;
    durable_table t(d.sub("t"), true);
    t.lock();
    uint64_t generation = t.generation();
    for (int i = 0; i < 3000; ++i) t.put(set("counter", std::string(500, 'x') + std::to_string(i)));
    EXPECT_GT(t.generation(), generation);
    EXPECT_LE(t.journal_bytes(), durable_table::rewrite_min_bytes + 1024);
    t.unlock();
    t.close();
    durable_table again(d.sub("t"), false);
    EXPECT_EQ(value_of(again, "counter"), std::string(500, 'x') + "2999");
}

TEST(DurableTable, ATornTailIsZeroedAndTheNextPutFollowsTheLastGoodRecord) {
    temp_dir d;
    uint64_t good;
    {
        durable_table t(d.sub("t"), true);
        t.lock();
        t.put(set("a", "1"));
        t.put(set("b", "2"));
        good = t.journal_bytes();
        t.unlock();
    }
    std::string journal = d.sub("t/journal");
    uint64_t allocated = file_size(journal);
    ASSERT_GT(allocated, good);
    // Half of a record: what a holder killed mid-put leaves.
    std::string record = record_of(3, "c", "3");
    write_at(journal, good, record.substr(0, record.size() / 2));
    {
        durable_table t(d.sub("t"), false);
        EXPECT_EQ(t.journal_bytes(), good);
        EXPECT_EQ(file_size(journal), allocated);  // zeroed in place, the preallocation kept
        EXPECT_TRUE(zeros_from(journal, good));
        EXPECT_EQ(t.get("c"), nullptr);
        t.lock();
        t.put(set("d", "4"));
        t.unlock();
    }
    durable_table t(d.sub("t"), false);
    EXPECT_EQ(value_of(t, "a"), "1");
    EXPECT_EQ(value_of(t, "d"), "4");
    EXPECT_EQ(t.size(), 3u);
}

TEST(DurableTable, AJournalWithoutPreallocationOpensAndGrowsAtTheNextPut) {
    // Journals written before preallocation end at their last record; a size
    // that reached the disk before the data leaves zeros after it.
    temp_dir d;
    uint64_t good;
    {
        durable_table t(d.sub("t"), true);
        t.lock();
        t.put(set("a", "1"));
        good = t.journal_bytes();
        t.unlock();
    }
    std::string journal = d.sub("t/journal");
    fs::resize_file(journal, good);
    {
        durable_table t(d.sub("t"), false);
        EXPECT_EQ(value_of(t, "a"), "1");
        t.lock();
        t.put(set("b", "2"));
        t.unlock();
        EXPECT_EQ(file_size(journal), durable_table::first_allocation_bytes);
    }
    fs::resize_file(journal, good + record_of(2, "b", "2").size());
    append_bytes(journal, std::string(700, '\0'));
    durable_table t(d.sub("t"), false);
    EXPECT_EQ(value_of(t, "a"), "1");
    EXPECT_EQ(value_of(t, "b"), "2");
}

TEST(DurableTable, PutsWriteInsideThePreallocatedJournal) {
    temp_dir d;
    durable_table a(d.sub("t"), true), b(d.sub("t"), false);
    std::string journal = d.sub("t/journal");
    a.lock();
    a.put(set("k", "v"));
    a.unlock();
    EXPECT_EQ(file_size(journal), durable_table::first_allocation_bytes);
    // Puts from both handles stay inside it until it is full; then it doubles.
    uint64_t last_end = 0;
    for (int i = 0; i < 600; ++i) {
        durable_table& t = i % 2 ? a : b;
        t.lock();
        t.put(set("k" + std::to_string(i % 5), std::string(100, 'x')));
        last_end = t.journal_bytes();
        t.unlock();
        uint64_t size = file_size(journal);
        ASSERT_GE(size, last_end);
        ASSERT_EQ(size, last_end <= durable_table::first_allocation_bytes ? durable_table::first_allocation_bytes
                                                                          : 2 * durable_table::first_allocation_bytes);
    }
    EXPECT_GT(last_end, durable_table::first_allocation_bytes);
    EXPECT_TRUE(zeros_from(journal, last_end));
}

TEST(DurableTable, ZerosAfterTheLastRecordAreTheEndNotATornTail) {
    temp_dir d;
    std::string journal = d.sub("t/journal");
    durable_table a(d.sub("t"), true), b(d.sub("t"), false);
    a.lock();
    a.sync(a.put(set("a", "1")));
    a.unlock();
    uint64_t size = file_size(journal);
    for (int round = 0; round < 3; ++round) {
        b.lock();
        b.refresh();
        EXPECT_EQ(value_of(b, "a"), "1");
        b.put(set("b", std::to_string(round)));
        b.unlock();
        a.lock();
        a.refresh();
        EXPECT_EQ(value_of(a, "b"), std::to_string(round));
        a.unlock();
        EXPECT_EQ(file_size(journal), size);  // nothing truncated by a refresh
    }
    uint64_t end = a.journal_bytes();
    a.close();
    b.close();
    durable_table c(d.sub("t"), false);  // a reopen reads the zeros as the end
    EXPECT_EQ(c.journal_bytes(), end);
    EXPECT_EQ(file_size(journal), size);
    EXPECT_EQ(value_of(c, "b"), "2");
}

TEST(DurableTable, AReopenAfterPreallocationFindsTheEnd) {
    // Several steps of growth, a rewrite, more growth: every reopen finds the
    // last record and the next put follows it.
    temp_dir d;
    std::string journal = d.sub("t/journal");
    std::map<std::string, std::string> model;
    for (int session = 0; session < 6; ++session) {
        durable_table t(d.sub("t"), true);
        EXPECT_EQ(t.size(), model.size());
        for (auto& [k, v] : model) EXPECT_EQ(value_of(t, k), v) << k;
        EXPECT_TRUE(zeros_from(journal, t.journal_bytes()));
        t.lock();
        for (int i = 0; i < 150 * (session + 1); ++i) {
            std::string k = "k" + std::to_string((i * 7 + session) % 40);
            std::string v = std::to_string(session) + ":" + std::string(static_cast<size_t>(i % 300), 'v');
            t.put(set(k, v));
            model[k] = v;
        }
        if (session == 3) t.rewrite();
        t.unlock();
    }
}

TEST(DurableTable, RecordsPastTheTailHintAreReadToo) {
    // tail_end in the lock page only bounds a catch-up's read: a record written
    // past it (by a writer that does not keep it) is found by parsing.
    temp_dir d;
    std::string dir = d.sub("t");
    durable_table a(dir, true), b(dir, false);
    a.lock();
    a.put(set("a", "1"));
    uint64_t end = a.journal_bytes();
    a.unlock();
    b.lock();
    b.refresh();
    b.unlock();
    int fd = ::open((dir + "/lock").c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    void* p = ::mmap(nullptr, durable_table::lock_page_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ASSERT_NE(p, MAP_FAILED);
    auto* page = static_cast<table_lock_page*>(p);
    ASSERT_EQ(page->tail_end.load(), end);
    // Two records, the second starting more than a probe's length past the
    // tail, announced by the counter only.
    std::string first = record_of(2, "x", std::string(6000, 'x'));
    std::string second = record_of(3, "y", "2");
    write_at(dir + "/journal", end, first + second);
    page->change_counter.fetch_add(1);
    ::munmap(p, durable_table::lock_page_bytes);
    ::close(fd);
    a.lock();
    a.refresh();
    EXPECT_EQ(a.journal_bytes(), end + first.size() + second.size());
    EXPECT_EQ(value_of(a, "y"), "2");
    a.put(set("z", "3"));
    a.unlock();
    durable_table c(dir, false);
    EXPECT_EQ(c.size(), 4u);
    EXPECT_EQ(value_of(c, "z"), "3");
}

TEST(DurableTable, ATornRecordWhoseFirstSectorIsZeroIsATornTail) {
    // A power cut may keep a later sector of an unsynced record and lose its
    // first one: zeros, then non-zero bytes. Not the end: a torn tail to zero.
    temp_dir d;
    uint64_t good;
    {
        durable_table t(d.sub("t"), true);
        t.lock();
        t.sync(t.put(set("a", "1")));
        good = t.journal_bytes();
        t.unlock();
    }
    std::string journal = d.sub("t/journal");
    std::string record = record_of(2, "c", std::string(2000, 'c'), good);
    write_at(journal, good + 512, record.substr(512));
    durable_table t(d.sub("t"), false);
    EXPECT_EQ(t.journal_bytes(), good);
    EXPECT_TRUE(zeros_from(journal, good));
    EXPECT_EQ(t.get("c"), nullptr);
    EXPECT_EQ(value_of(t, "a"), "1");
}

TEST(DurableTable, ATornTailLeftWhileOthersHaveItOpenIsZeroedAtTheirRefresh) {
    temp_dir d;
    durable_table a(d.sub("t"), true);
    a.lock();
    a.put(set("a", "1"));
    a.unlock();
    std::string journal = d.sub("t/journal");
    uint64_t good = a.journal_bytes();
    // Another handle died mid-put: it bumped the counter, raised the page's
    // tail_end, then wrote half of its record.
    uint64_t dying_end;
    {
        durable_table dying(d.sub("t"), false);
        dying.lock();
        dying.put(set("x", std::string(3000, 'y')));
        dying_end = dying.journal_bytes();
        dying.unlock();
    }
    write_at(journal, good + (dying_end - good) / 2, std::string((dying_end - good) / 2 + 1, '\0'));
    uint64_t size = file_size(journal);
    a.lock();
    a.refresh();
    EXPECT_EQ(a.journal_bytes(), good);
    EXPECT_TRUE(zeros_from(journal, good));
    EXPECT_EQ(file_size(journal), size);
    EXPECT_EQ(a.get("x"), nullptr);
    a.put(set("b", "2"));
    a.unlock();
    durable_table c(d.sub("t"), false);
    EXPECT_EQ(c.size(), 2u);
}

TEST(DurableTable, DamageThatALaterRecordVouchesForIsCorruptionAndNothingIsCut) {
    temp_dir d;
    uint64_t second_start;
    {
        durable_table t(d.sub("t"), true);
        t.lock();
        t.sync(t.put(set("a", "1")));
        second_start = t.journal_bytes();
        t.sync(t.put(set("b", "2")));
        t.put(set("c", "3"));  // vouches: everything before it was synced
        t.unlock();
    }
    std::string journal = d.sub("t/journal");
    uint64_t size = file_size(journal);
    flip_byte(journal, second_start + 40);  // inside the second record's payload
    try {
        durable_table t(d.sub("t"), false);
        FAIL() << "opened a damaged journal";
    } catch (const error& e) {
        EXPECT_EQ(e.code(), errc::corrupt);
        ASSERT_NE(e.place(), nullptr);
        EXPECT_EQ(e.place()->segment, journal);
        EXPECT_EQ(e.place()->position, second_start);
    }
    EXPECT_EQ(file_size(journal), size);
}

TEST(DurableTable, DamageNoLaterRecordVouchesForIsATornTail) {
    temp_dir d;
    uint64_t second_start;
    {
        durable_table t(d.sub("t"), true);
        t.lock();
        t.put(set("a", "1"));
        second_start = t.journal_bytes();
        t.put(set("b", "2"));
        t.put(set("c", "3"));  // nothing was synced: a power cut may tear any of these
        t.unlock();
    }
    std::string journal = d.sub("t/journal");
    flip_byte(journal, second_start + 40);
    durable_table t(d.sub("t"), false);
    EXPECT_EQ(t.journal_bytes(), second_start);
    EXPECT_TRUE(zeros_from(journal, second_start));
    EXPECT_EQ(t.size(), 1u);
}

TEST(DurableTable, ALeftoverJournalNewIsRemoved) {
    temp_dir d;
    {
        durable_table t(d.sub("t"), true);
        t.lock();
        t.put(set("a", "1"));
        t.unlock();
    }
    append_bytes(d.sub("t/journal.new"), "a rewrite that never became the journal");
    durable_table t(d.sub("t"), false);
    EXPECT_FALSE(fs::exists(d.sub("t/journal.new")));
    EXPECT_EQ(value_of(t, "a"), "1");
}

TEST(DurableTable, ABadJournalHeaderIsCorruption) {
    temp_dir d;
    { durable_table t(d.sub("t"), true); }
    flip_byte(d.sub("t/journal"), 1);
    try {
        durable_table t(d.sub("t"), false);
        FAIL();
    } catch (const error& e) {
        EXPECT_EQ(e.code(), errc::corrupt);
    }
}

// --- sync: skipped when another handle's fdatasync covered the put ---

std::atomic<int> datasyncs{0};
const io::hooks counting_hooks = [] {
    io::hooks h = tidelog_test::passthrough_io_hooks();
    h.fdatasync = [](int fd) {
        datasyncs++;
        return ::fdatasync(fd);
    };
    return h;
}();

TEST(DurableTable, SyncIsSkippedWhenAnotherHandleSyncedPastIt) {
    temp_dir d;
    durable_table a(d.sub("t"), true), b(d.sub("t"), true);
    a.lock();
    table_sync_token ta = a.put(set("a", "1"));
    a.unlock();
    b.lock();
    table_sync_token tb = b.put(set("b", "2"));
    b.unlock();
    io::install_hooks(&counting_hooks);
    datasyncs = 0;
    b.sync(tb);
    EXPECT_EQ(datasyncs.load(), 1);
    a.sync(ta);  // b's fdatasync covered a's earlier record
    b.sync(tb);
    EXPECT_EQ(datasyncs.load(), 1);
    a.lock();
    table_sync_token ta2 = a.put(set("a", "3"));
    a.unlock();
    a.sync(ta2);
    EXPECT_EQ(datasyncs.load(), 2);
    io::install_hooks(nullptr);
}

// --- a child process killed inside a put or a rewrite (kill points) ---

// The child side: runs only when the parent execs this binary with
// TIDELOG_TABLE_CHILD_DIR set (and TIDELOG_TEST_KILL_AT armed).
TEST(DurableTableChild, PutsUntilKilled) {
    const char* dir = std::getenv("TIDELOG_TABLE_CHILD_DIR");
    if (!dir) GTEST_SKIP() << "the child side of DurableTable/KilledChild.*";
    durable_table t(dir, false);
    t.lock();
    for (int i = 0; i < 100000; ++i) {
        t.put(set("k", "new-" + std::to_string(i)));
        if (i % 7 == 0) t.rewrite();
    }
    std::_Exit(2);  // the kill point was never reached
}

int run_killed_child(const std::string& dir, const std::string& point) {
    std::fflush(nullptr);
    pid_t pid = ::fork();
    if (pid == 0) {
        ::setenv("TIDELOG_TABLE_CHILD_DIR", dir.c_str(), 1);
        ::setenv("TIDELOG_TEST_KILL_AT", point.c_str(), 1);
        int null = ::open("/dev/null", O_WRONLY);
        ::dup2(null, 1);
        const char* argv[] = {"tidelog_native_tests", "--gtest_filter=DurableTableChild.PutsUntilKilled", nullptr};
        ::execv("/proc/self/exe", const_cast<char* const*>(argv));
        ::_exit(127);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFSIGNALED(status) ? WTERMSIG(status) : -WEXITSTATUS(status);
}

class KilledChild : public ::testing::TestWithParam<const char*> {};

TEST_P(KilledChild, LeavesTheOldOrTheNewValueNeverGarbage) {
    temp_dir d;
    std::string dir = d.sub("t");
    durable_table survivor(dir, true);
    survivor.lock();
    survivor.put(std::vector<change>{{"k", std::string("old")}, {"other", std::string("kept")}});
    survivor.unlock();
    std::string point = GetParam();
    ASSERT_EQ(run_killed_child(dir, point), SIGKILL) << point;
    // Both a handle that was open throughout and a fresh one agree.
    survivor.lock();  // the kernel released the dead child's lock
    survivor.refresh();
    std::string v = value_of(survivor, "k");
    EXPECT_TRUE(v == "old" || v.rfind("new-", 0) == 0) << v;
    EXPECT_EQ(value_of(survivor, "other"), "kept");
    if (point == "table.put.mid:1") EXPECT_EQ(v, "old");
    if (point == "table.put.written:1") EXPECT_EQ(v, "new-0");
    survivor.put(set("after", "kill"));
    survivor.unlock();
    durable_table fresh(dir, false);
    EXPECT_EQ(value_of(fresh, "k"), v);
    EXPECT_EQ(value_of(fresh, "after"), "kill");
    EXPECT_FALSE(fs::exists(dir + "/journal.new"));  // the fresh open removed a dead rewrite
}

INSTANTIATE_TEST_SUITE_P(DurableTable, KilledChild,
                         ::testing::Values("table.put.mid:1", "table.put.mid:5", "table.put.written:1",
                                           "table.rewrite.written:2", "table.rewrite.renamed:2"));

}  // namespace
