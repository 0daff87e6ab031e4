// The power-loss simulator itself (native/testing/sim_file_io.*): what survives a cut.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <string>

#include "file_handle.h"
#include "testing/sim_file_io.h"
#include "tests/test_util.h"

namespace {

namespace fs = std::filesystem;
using namespace tidelog;
using tidelog_test::read_file_bytes;
using tidelog_test::temp_dir;

sim::cut_options keep_nothing() {
    sim::cut_options o;
    o.keep_nothing = true;
    return o;
}

sim::cut_options keep_everything() {
    sim::cut_options o;
    o.keep_everything = true;
    return o;
}

std::string text(const std::string& path) {
    auto b = read_file_bytes(path);
    return std::string(b.begin(), b.end());
}

void write_text(tidelog::file_handle& f, const std::string& s, uint64_t pos) { f.pwrite_all(s.data(), s.size(), pos); }

TEST(SimFileIo, SyncedDataSurvivesUnsyncedDataDoesNot) {
    temp_dir dir;
    sim::file_system fs_(dir.path());
    fs_.install();
    std::string path = dir.sub("a");
    {
        tidelog::file_handle f = tidelog::file_handle::open(path, O_RDWR | O_CREAT);
        write_text(f, "durable", 0);
        f.datasync();
        fsync_directory(dir.path());
        write_text(f, "-lost", 7);
        EXPECT_EQ(text(path), "durable-lost");  // the live file (page cache) has both
    }
    fs_.cut_now(1, keep_nothing());
    EXPECT_THROW(tidelog::file_handle::open(dir.sub("b"), O_RDWR | O_CREAT), error);  // dead after the cut
    fs_.reboot();
    EXPECT_EQ(text(path), "durable");
    fs_.uninstall();
}

TEST(SimFileIo, KeepEverythingIsAProcessCrash) {
    temp_dir dir;
    sim::file_system fs_(dir.path());
    fs_.install();
    make_directories(dir.sub("x/y"));
    {
        tidelog::file_handle f = tidelog::file_handle::open(dir.sub("x/y/f"), O_RDWR | O_CREAT);
        write_text(f, "hello", 0);
        f.allocate(0, 4096);
        f.truncate(5);
    }
    fs_.cut_now(1, keep_everything());
    fs_.reboot();
    EXPECT_EQ(text(dir.sub("x/y/f")), "hello");
    fs_.uninstall();
}

TEST(SimFileIo, UnsyncedCreateAndMkdirAreLost) {
    temp_dir dir;
    sim::file_system fs_(dir.path());
    fs_.install();
    make_directories(dir.sub("d"));
    {
        tidelog::file_handle f = tidelog::file_handle::open(dir.sub("d/f"), O_RDWR | O_CREAT);
        write_text(f, "data", 0);
        f.datasync();  // the data, not the name
    }
    fs_.cut_now(7, keep_nothing());
    fs_.reboot();
    EXPECT_FALSE(fs::exists(dir.sub("d")));
    fs_.uninstall();
}

TEST(SimFileIo, DirectoryFsyncMakesNamesDurable) {
    temp_dir dir;
    sim::file_system fs_(dir.path());
    fs_.install();
    make_directories(dir.sub("d"));
    fsync_directory(dir.path());
    {
        tidelog::file_handle f = tidelog::file_handle::open(dir.sub("d/f"), O_RDWR | O_CREAT);
        write_text(f, "data", 0);
        f.datasync();
    }
    fsync_directory(dir.sub("d"));
    {
        tidelog::file_handle g = tidelog::file_handle::open(dir.sub("d/g"), O_RDWR | O_CREAT);  // not fsynced
    }
    remove_file(dir.sub("d/f"));  // not fsynced either
    fs_.cut_now(3, keep_nothing());
    fs_.reboot();
    EXPECT_EQ(text(dir.sub("d/f")), "data");
    EXPECT_FALSE(fs::exists(dir.sub("d/g")));
    fs_.uninstall();
}

TEST(SimFileIo, RenameIsAtomicAndNeedsTheFolderSync) {
    temp_dir dir;
    sim::file_system fs_(dir.path());
    fs_.install();
    {
        tidelog::file_handle f = tidelog::file_handle::open(dir.sub("old"), O_RDWR | O_CREAT);
        write_text(f, "v1", 0);
        f.datasync();
        fsync_directory(dir.path());
        tidelog::file_handle t = tidelog::file_handle::open(dir.sub("tmp"), O_RDWR | O_CREAT);
        write_text(t, "v2", 0);
        t.datasync();
    }
    rename_file(dir.sub("tmp"), dir.sub("old"));
    // Lost: the old content under the old name.
    fs_.cut_now(5, keep_nothing());
    fs_.reboot();
    EXPECT_EQ(text(dir.sub("old")), "v1");
    EXPECT_FALSE(fs::exists(dir.sub("tmp")));
    // Kept: the new content, and no tmp.
    {
        tidelog::file_handle t = tidelog::file_handle::open(dir.sub("tmp"), O_RDWR | O_CREAT);
        write_text(t, "v3", 0);
        t.datasync();
    }
    rename_file(dir.sub("tmp"), dir.sub("old"));
    fs_.cut_now(5, keep_everything());
    fs_.reboot();
    EXPECT_EQ(text(dir.sub("old")), "v3");
    EXPECT_FALSE(fs::exists(dir.sub("tmp")));
    fs_.uninstall();
}

TEST(SimFileIo, TornWritesKeepWholeSectorsAndConfineGarbage) {
    // A 4 KiB write over a synced 4 KiB of 'a': every 512-byte sector ends up
    // all 'a' (old), all 'b' (new) or garbage; garbage never reaches bytes the
    // write did not cover.
    int torn = 0, kept = 0, garbage = 0;
    for (uint64_t seed = 1; seed <= 40; ++seed) {
        temp_dir dir;
        sim::file_system fs_(dir.path());
        fs_.install();
        {
            tidelog::file_handle f = tidelog::file_handle::open(dir.sub("f"), O_RDWR | O_CREAT);
            std::string a(4096 + 100, 'a');
            write_text(f, a, 0);
            f.datasync();
            fsync_directory(dir.path());
            write_text(f, std::string(4096 - 100, 'b'), 100);  // bytes [100, 4096)
        }
        sim::cut_options o;
        o.keep_sector = 0.5;
        o.garbage = 0.5;
        fs_.cut_now(seed, o);
        fs_.reboot();
        std::string s = text(dir.sub("f"));
        ASSERT_EQ(s.size(), 4096u + 100);
        EXPECT_EQ(s.substr(0, 100), std::string(100, 'a'));
        EXPECT_EQ(s.substr(4096), std::string(100, 'a'));
        for (size_t sector = 0; sector < 8; ++sector) {
            size_t from = std::max<size_t>(sector * 512, 100), to = (sector + 1) * 512;
            std::string piece = s.substr(from, to - from);
            if (piece == std::string(piece.size(), 'a')) ++torn;
            else if (piece == std::string(piece.size(), 'b')) ++kept;
            else ++garbage;
        }
        fs_.uninstall();
    }
    EXPECT_GT(torn, 0);
    EXPECT_GT(kept, 0);
    EXPECT_GT(garbage, 0);
}

TEST(SimFileIo, SizeChangesFollowAPrefix) {
    // An unsynced ftruncate then an extending write: whatever survives, the
    // file is never longer than the write made it and never shorter than the
    // durable size unless the truncate reached the disk.
    for (uint64_t seed = 1; seed <= 30; ++seed) {
        temp_dir dir;
        sim::file_system fs_(dir.path());
        fs_.install();
        {
            tidelog::file_handle f = tidelog::file_handle::open(dir.sub("f"), O_RDWR | O_CREAT);
            write_text(f, std::string(1000, 'x'), 0);
            f.datasync();
            fsync_directory(dir.path());
            f.truncate(10);
            write_text(f, "yy", 10);
        }
        sim::cut_options o;
        fs_.cut_now(seed, o);
        fs_.reboot();
        std::string s = text(dir.sub("f"));
        // sizes: 1000 (nothing), 10 (truncate), 12 (both)
        EXPECT_TRUE(s.size() == 1000 || s.size() == 10 || s.size() == 12) << s.size();
        EXPECT_EQ(s.substr(0, 10), std::string(10, 'x'));
        if (s.size() == 10) EXPECT_EQ(s, std::string(10, 'x'));
        fs_.uninstall();
    }
}

TEST(SimFileIo, ArmedCutFailsTheNthOperation) {
    temp_dir dir;
    sim::file_system fs_(dir.path());
    fs_.install();
    tidelog::file_handle f = tidelog::file_handle::open(dir.sub("f"), O_RDWR | O_CREAT);  // operation 1
    fs_.arm(2, 9, keep_everything());
    write_text(f, "one", 0);                            // operation 2 from arming: 1st
    EXPECT_THROW(write_text(f, "two", 3), error);     // 2nd: the cut, fails with EIO
    EXPECT_TRUE(fs_.cut());
    f.close();
    fs_.reboot();
    EXPECT_EQ(text(dir.sub("f")), "one");
    fs_.uninstall();
}

TEST(SimFileIo, UnorderedMetadataCanKeepALaterUnlinkAndLoseAnEarlierOne) {
    bool seen = false;
    for (uint64_t seed = 1; seed <= 200 && !seen; ++seed) {
        temp_dir dir;
        sim::file_system fs_(dir.path());
        fs_.install();
        for (const char* n : {"a", "b"}) tidelog::file_handle::open(dir.sub(n), O_RDWR | O_CREAT);
        fsync_directory(dir.path());
        remove_file(dir.sub("a"));
        remove_file(dir.sub("b"));
        sim::cut_options o;
        o.ordered_metadata = false;
        fs_.cut_now(seed, o);
        fs_.reboot();
        seen = fs::exists(dir.sub("a")) && !fs::exists(dir.sub("b"));
        fs_.uninstall();
    }
    EXPECT_TRUE(seen);
    // Ordered metadata never does.
    for (uint64_t seed = 1; seed <= 200; ++seed) {
        temp_dir dir;
        sim::file_system fs_(dir.path());
        fs_.install();
        for (const char* n : {"a", "b"}) tidelog::file_handle::open(dir.sub(n), O_RDWR | O_CREAT);
        fsync_directory(dir.path());
        remove_file(dir.sub("a"));
        remove_file(dir.sub("b"));
        fs_.cut_now(seed, sim::cut_options{});
        fs_.reboot();
        ASSERT_FALSE(fs::exists(dir.sub("a")) && !fs::exists(dir.sub("b"))) << seed;
        fs_.uninstall();
    }
}

}  // namespace
