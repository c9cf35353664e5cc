// Operations (docs/operations.md, docs/reliability.md §6): `defender-console backup` of a live
// database under heartbeat load and its restore; a genuinely full file system (a small tmpfs)
// and a file system that turns read-only (ext4 on a loop device, errors=remount-ro) under a real
// defender-console child process.
//
// The file-system tests mount, so they need root (CI runs as root); otherwise they say so with a
// WARN and return without checking anything.
#include <catch2/catch.hpp>

#include <httplib.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "inventory/sqlite_store.h"
#include "support/console_child.h"

using namespace dc;
using namespace std::chrono_literals;
using dc::testing::ConsoleChild;
using dc::testing::integrityCheck;
using dc::testing::kChildAdminPassword;
using dc::testing::runConsoleCommand;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

constexpr int kFlushMs = 200;
const std::string kAppId = "checkout:0b7e6c4e-3f4b-4b7b-9d3c-1a2b3c4d5e6f";

fs::path scratch(const std::string& name) {
  const fs::path p =
      fs::temp_directory_path() / ("dc-ops-" + name + "-" + std::to_string(getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

std::string heartbeat(const std::string& host) {
  return json{{"hostname", host}, {"type", "fargate"},  {"appID", kAppId},
              {"cluster", "ops"}, {"version", "1.0.0"}, {"cloudMetadata", {{"provider", "aws"}}}}
      .dump();
}

std::string enrolmentCredential(int consolePort) {
  httplib::Client api("127.0.0.1", consolePort);
  api.set_basic_auth("admin", kChildAdminPassword);
  auto r = api.Post("/api/v1/credentials", R"({"scope":"enrolment","description":"ops"})",
                    "application/json");
  REQUIRE(r);
  REQUIRE(r->status == 201);
  return json::parse(r->body).at("credential").get<std::string>();
}

/// What the Console acknowledged (HTTP 200) and what it refused.
struct Ledger {
  std::mutex mutex;
  std::set<std::string> registered;
  std::map<std::string, TimePoint> answeredAt;  // when each registration's 200 arrived
  long long refreshes = 0;
  long long refusedStorage = 0;  // 503 storage_unavailable
  long long refusedOther = 0;    // anything else but 200
};

/// Registers new Defenders (prefix-thread-n) and refreshes known ones until `stop`.
void load(int port, const std::string& credential, const std::string& prefix, int thread,
          std::atomic<bool>& stop, Ledger& ledger) {
  httplib::Client client("127.0.0.1", port);
  client.set_bearer_token_auth(credential.c_str());
  client.set_read_timeout(15, 0);
  std::vector<std::string> mine;
  for (int n = 0; !stop; ++n) {
    const bool fresh = mine.empty() || n % 3 == 0;
    const std::string host = fresh
                                 ? prefix + "-t" + std::to_string(thread) + "-" + std::to_string(n)
                                 : mine[static_cast<size_t>(n) % mine.size()];
    auto r = client.Post("/api/v1/defender/heartbeat", heartbeat(host), "application/json");
    std::lock_guard lock(ledger.mutex);
    if (r && r->status == 200) {
      if (fresh) {
        ledger.registered.insert(host);
        ledger.answeredAt[host] = SystemClock().now();
        mine.push_back(host);
      } else {
        ++ledger.refreshes;
      }
    } else if (r && r->status == 503 && r->body.find("storage_unavailable") != std::string::npos) {
      ++ledger.refusedStorage;
    } else {
      ++ledger.refusedOther;
    }
  }
}

struct LoadThreads {
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  LoadThreads(int port, const std::string& credential, const std::string& prefix, Ledger& ledger) {
    for (int t = 0; t < 3; ++t)
      threads.emplace_back(load, port, std::cref(credential), prefix, t, std::ref(stop),
                           std::ref(ledger));
  }
  void join() {
    stop = true;
    for (auto& t : threads)
      if (t.joinable()) t.join();
  }
  ~LoadThreads() { join(); }
};

/// Polls `done` every 20 ms for at most `limit`; true once it held.
template <typename F>
bool waitFor(F done, std::chrono::milliseconds limit) {
  for (auto until = std::chrono::steady_clock::now() + limit;
       std::chrono::steady_clock::now() < until; std::this_thread::sleep_for(20ms))
    if (done()) return true;
  return done();
}

size_t registeredCount(Ledger& ledger) {
  std::lock_guard lock(ledger.mutex);
  return ledger.registered.size();
}

/// The Defenders of `hosts` that the database file `db` does not hold.
std::vector<std::string> missingFrom(const fs::path& db, const std::set<std::string>& hosts) {
  auto store = inventory::openSqliteStore({db.string()});
  REQUIRE(store.ok());
  std::vector<std::string> missing;
  for (const auto& host : hosts) {
    auto d = (*store)->findDefender(inventory::hostnameKey(host));
    REQUIRE(d.ok());
    if (!d->has_value()) missing.push_back(host);
  }
  return missing;
}

/// Every Defender in `hosts` is in the database file `db`.
void requireStored(const fs::path& db, const std::set<std::string>& hosts) {
  const auto missing = missingFrom(db, hosts);
  INFO(missing.size() << " of " << hosts.size() << " acknowledged Defenders missing from " << db
                      << (missing.empty() ? ""
                                          : ", e.g. " + missing.front() + " … " + missing.back()));
  REQUIRE(missing.empty());
}

/// During a storage fault: a registration of `newHost` answers 503 storage_unavailable with
/// Retry-After, a refresh of a connected Defender 200 (held in memory), and the reads — the list,
/// that Defender, /metrics with dc_storage_failing 1 — work. Returns the refreshed Defender.
std::string checkDuringFault(const ConsoleChild& console, const std::string& credential,
                             Ledger& ledger, const std::string& newHost) {
  httplib::Client channel("127.0.0.1", console.defenderPort);
  channel.set_bearer_token_auth(credential.c_str());
  auto refused = channel.Post("/api/v1/defender/heartbeat", heartbeat(newHost), "application/json");
  REQUIRE(refused);
  CHECK(refused->status == 503);
  CHECK(json::parse(refused->body).value("code", "") == "storage_unavailable");
  CHECK(refused->has_header("Retry-After"));
  std::string known;
  {
    std::lock_guard lock(ledger.mutex);
    known = *ledger.registered.begin();
  }
  auto held = channel.Post("/api/v1/defender/heartbeat", heartbeat(known), "application/json");
  REQUIRE(held);
  CHECK(held->status == 200);
  httplib::Client api("127.0.0.1", console.consolePort);
  api.set_basic_auth("admin", kChildAdminPassword);
  auto list = api.Get("/api/v1/defenders?limit=10");
  REQUIRE(list);
  CHECK(list->status == 200);
  auto one = api.Get("/api/v1/defenders/" + known);
  REQUIRE(one);
  CHECK(one->status == 200);
  auto metrics = api.Get("/metrics");
  REQUIRE(metrics);
  CHECK(metrics->body.find("dc_storage_failing 1") != std::string::npos);
  return known;
}

std::string fileText(const fs::path& p) {
  std::ifstream in(p);
  return {std::istreambuf_iterator<char>(in), {}};
}

/// Root and a working mount(2); otherwise a loud WARN (the caller returns).
bool canMount(const fs::path& dir) {
  if (geteuid() != 0) {
    WARN("NOT RUN: this test mounts a file system and needs root (CI runs as root)");
    return false;
  }
  if (::mount("tmpfs", dir.c_str(), "tmpfs", 0, "size=1m") != 0) {
    WARN("NOT RUN: mount(2) is not permitted here: " << std::strerror(errno));
    return false;
  }
  ::umount(dir.c_str());
  return true;
}

}  // namespace

TEST_CASE(
    "backup: a copy taken under heartbeat load holds every Defender acknowledged before it; "
    "restored, the Console starts on it") {
  const fs::path dir = scratch("backup");
  const fs::path data = dir / "data", backupFile = dir / "backups" / "console-backup.db";
  fs::create_directories(data);
  fs::create_directories(backupFile.parent_path());
  const fs::path log = dir / "backup.log";

  Ledger ledger;
  std::set<std::string> before;  // acknowledged before the backup began
  std::set<std::string> later;   // acknowledged after it ended
  std::string credential;
  {
    ConsoleChild console;
    console.start(data, kFlushMs, dir / "console.log", dir / "ports");
    credential = enrolmentCredential(console.consolePort);
    LoadThreads threads(console.defenderPort, credential, "b", ledger);
    REQUIRE(waitFor([&] { return registeredCount(ledger) >= 300; }, 60s));
    {
      std::lock_guard lock(ledger.mutex);
      before = ledger.registered;
    }
    // The backup runs while the load keeps registering and refreshing.
    const int rc =
        runConsoleCommand({"backup", backupFile.string(), "--data-dir", data.string()}, log);
    INFO(fileText(log));
    REQUIRE(rc == 0);
    std::set<std::string> atEnd;
    {
      std::lock_guard lock(ledger.mutex);
      atEnd = ledger.registered;
    }
    CHECK(atEnd.size() > before.size());  // the load did run during the backup
    REQUIRE(waitFor([&] { return registeredCount(ledger) >= atEnd.size() + 20; }, 60s));
    threads.join();
    CHECK(console.stop(SIGTERM) == 0);
    std::lock_guard lock(ledger.mutex);
    for (const auto& host : ledger.registered)
      if (!atEnd.contains(host)) later.insert(host);
  }
  {
    // A backup of the stopped Console's database holds everything acknowledged.
    const fs::path stopped = dir / "backups" / "stopped.db";
    REQUIRE(runConsoleCommand({"--data-dir", data.string(), "backup", stopped.string()}, log) == 0);
    std::lock_guard lock(ledger.mutex);
    CHECK(ledger.refusedOther == 0);
    requireStored(stopped, ledger.registered);
  }
  const std::string out = fileText(log);
  CHECK(out.find("pages copied") != std::string::npos);
  CHECK(out.find("integrity check ok") != std::string::npos);
  CHECK_FALSE(fs::exists(backupFile.string() + ".tmp"));
  CHECK((fs::status(backupFile).permissions() & fs::perms::all) ==
        (fs::perms::owner_read | fs::perms::owner_write));
  REQUIRE(integrityCheck(backupFile) == "ok");
  requireStored(backupFile, before);

  // Restore (docs/operations.md) into the same data directory, the Console stopped: the copy
  // replaces console.db (kept as console.db.replaced with its -wal), and the Console starts on it:
  // Defenders and credentials from before the backup are back, those from after it are not.
  const fs::path restoreLog = dir / "restore.log";
  const int restored =
      runConsoleCommand({"restore", backupFile.string(), "--data-dir", data.string()}, restoreLog);
  INFO(fileText(restoreLog));
  REQUIRE(restored == 0);
  CHECK(fs::exists(data / "console.db.replaced"));
  CHECK_FALSE(fs::exists(data / "console.db-shm"));
  CHECK_FALSE(fs::exists(data / "console.db.restore"));
  requireStored(data / "console.db", before);
  CHECK(missingFrom(data / "console.db", later).size() == later.size());
  ConsoleChild console;
  console.start(data, kFlushMs, dir / "restored.log", dir / "ports");
  httplib::Client api("127.0.0.1", console.consolePort);
  api.set_basic_auth("admin", kChildAdminPassword);
  auto r = api.Get("/api/v1/defenders/" + *before.begin());
  REQUIRE(r);
  CHECK(r->status == 200);
  auto gone = api.Get("/api/v1/defenders/" + *later.begin());
  REQUIRE(gone);
  CHECK(gone->status == 404);
  httplib::Client channel("127.0.0.1", console.defenderPort);
  channel.set_bearer_token_auth(credential.c_str());
  auto hb =
      channel.Post("/api/v1/defender/heartbeat", heartbeat(*before.rbegin()), "application/json");
  REQUIRE(hb);
  CHECK(hb->status == 200);
  // A restore while the Console runs is refused and changes nothing.
  CHECK(runConsoleCommand({"restore", backupFile.string(), "--data-dir", data.string()},
                          restoreLog) == 1);
  CHECK(fileText(restoreLog).find("is open in process " + std::to_string(console.pid)) !=
        std::string::npos);
  CHECK(console.stop(SIGTERM) == 0);
  fs::remove_all(dir);
}

TEST_CASE("backup and restore: failures exit non-zero with a clear message and change nothing") {
  const fs::path dir = scratch("backup-errors");
  const fs::path log = dir / "out.log";
  SECTION("no database") {
    CHECK(runConsoleCommand(
              {"backup", (dir / "x.db").string(), "--data-dir", (dir / "missing").string()}, log) ==
          1);
    CHECK(fileText(log).find("does not exist") != std::string::npos);
    CHECK_FALSE(fs::exists(dir / "x.db"));
  }
  SECTION("not a database") {
    fs::create_directories(dir / "data");
    std::ofstream(dir / "data" / "console.db") << "not a database, just text\n";
    CHECK(runConsoleCommand(
              {"backup", (dir / "x.db").string(), "--data-dir", (dir / "data").string()}, log) ==
          1);
    CHECK(fileText(log).find("backup failed") != std::string::npos);
    CHECK_FALSE(fs::exists(dir / "x.db"));
    CHECK_FALSE(fs::exists(dir / "x.db.tmp"));
  }
  SECTION("destination directory missing") {
    fs::create_directories(dir / "data");
    {
      auto store = inventory::openSqliteStore({(dir / "data" / "console.db").string()});
      REQUIRE(store.ok());
    }
    CHECK(runConsoleCommand({"backup", (dir / "nowhere" / "x.db").string(), "--data-dir",
                             (dir / "data").string()},
                            log) == 1);
    CHECK(fileText(log).find("nowhere") != std::string::npos);
  }
  SECTION("a destination in the database's own directory (its WAL, lock, keys) is refused") {
    fs::create_directories(dir / "data");
    {
      auto store = inventory::openSqliteStore({(dir / "data" / "console.db").string()});
      REQUIRE(store.ok());
    }
    std::ofstream(dir / "data" / "registry.key") << "key bytes";
    for (const char* name : {"console.db-wal", "registry.key", "backup.db"}) {
      INFO(name);
      CHECK(runConsoleCommand(
                {"backup", (dir / "data" / name).string(), "--data-dir", (dir / "data").string()},
                log) == 1);
      CHECK(fileText(log).find("own directory") != std::string::npos);
    }
    CHECK(fileText(dir / "data" / "registry.key") == "key bytes");
    CHECK_FALSE(fs::exists(dir / "data" / "backup.db"));
    CHECK(integrityCheck(dir / "data" / "console.db") == "ok");
  }
  SECTION("restore of a file that is not a database") {
    fs::create_directories(dir / "data");
    {
      auto store = inventory::openSqliteStore({(dir / "data" / "console.db").string()});
      REQUIRE(store.ok());
    }
    const auto sizeBefore = fs::file_size(dir / "data" / "console.db");
    std::ofstream(dir / "junk.db") << "not a database, just text\n";
    CHECK(runConsoleCommand(
              {"restore", (dir / "junk.db").string(), "--data-dir", (dir / "data").string()},
              log) == 1);
    CHECK(fileText(log).find("not a sound database") != std::string::npos);
    CHECK(fs::file_size(dir / "data" / "console.db") == sizeBefore);
    CHECK(integrityCheck(dir / "data" / "console.db") == "ok");
    CHECK_FALSE(fs::exists(dir / "data" / "console.db.replaced"));
  }
  SECTION("no file given") {
    CHECK(runConsoleCommand({"backup"}, log) == 2);
    CHECK(fileText(log).find("file") != std::string::npos);
  }
  fs::remove_all(dir);
}

TEST_CASE(
    "full disk: durable writes 503 storage_unavailable, reads work, nothing acknowledged "
    "is lost, the Console recovers by itself once space returns") {
  const fs::path dir = scratch("full");
  const fs::path data = dir / "data";
  fs::create_directories(data);
  if (!canMount(data)) return;
  REQUIRE(::mount("tmpfs", data.c_str(), "tmpfs", 0, "size=24m") == 0);
  struct Unmount {
    fs::path p, dir;
    ~Unmount() {
      ::umount2(p.c_str(), MNT_DETACH);
      fs::remove_all(dir);
    }
  } unmount{data, dir};

  Ledger ledger;
  ConsoleChild console;
  console.start(data, kFlushMs, dir / "console.log", dir / "ports");
  const std::string credential = enrolmentCredential(console.consolePort);
  LoadThreads threads(console.defenderPort, credential, "f", ledger);
  REQUIRE(waitFor([&] { return registeredCount(ledger) >= 100; }, 60s));

  // Fill the file system to the last byte under load.
  const fs::path filler = data / "filler";
  {
    FILE* f = std::fopen(filler.c_str(), "w");
    REQUIRE(f);
    std::vector<char> block(64 << 10, 'x');
    while (std::fwrite(block.data(), 1, block.size(), f) == block.size()) {
    }
    std::fclose(f);
  }
  // Registrations need new pages: they are refused once the WAL and the database cannot grow.
  INFO("log: " << (dir / "console.log"));
  REQUIRE(waitFor(
      [&] {
        std::lock_guard lock(ledger.mutex);
        return ledger.refusedStorage > 0;
      },
      60s));
  const TimePoint heldAt = SystemClock().now();
  const std::string known = checkDuringFault(console, credential, ledger, "f-during-fault");
  httplib::Client channel("127.0.0.1", console.defenderPort);
  channel.set_bearer_token_auth(credential.c_str());
  httplib::Client api("127.0.0.1", console.consolePort);
  api.set_basic_auth("admin", kChildAdminPassword);

  // Space returns: the Console recovers without a restart.
  fs::remove(filler);
  const long long refusedAtRecovery = [&] {
    std::lock_guard lock(ledger.mutex);
    return ledger.refusedStorage;
  }();
  REQUIRE(waitFor(
      [&] {
        auto r = channel.Post("/api/v1/defender/heartbeat", heartbeat("f-after-recovery"),
                              "application/json");
        return r && r->status == 200;
      },
      30s));
  threads.join();
  auto after = api.Get("/metrics");
  REQUIRE(after);
  CHECK(after->body.find("dc_storage_failing 0") != std::string::npos);
  CHECK(after->body.find("dc_storage_fault_episodes_total 1") != std::string::npos);
  CHECK(console.stop(SIGTERM) == 0);

  const std::string out = fileText(dir / "console.log");
  CHECK(out.find("storage does not accept writes") != std::string::npos);
  CHECK(out.find("storage accepts writes again") != std::string::npos);
  REQUIRE(integrityCheck(data / "console.db") == "ok");
  std::set<std::string> acknowledged;
  {
    std::lock_guard lock(ledger.mutex);
    acknowledged = ledger.registered;
    CHECK(ledger.refusedOther == 0);
    WARN("full disk: " << ledger.registered.size() << " registrations acknowledged, "
                       << ledger.refreshes << " refreshes, " << refusedAtRecovery
                       << " registrations refused 503 storage_unavailable; lost 0");
  }
  acknowledged.insert("f-after-recovery");
  requireStored(data / "console.db", acknowledged);
  // The refresh held in memory during the fault was written after it.
  auto store = inventory::openSqliteStore({(data / "console.db").string()});
  REQUIRE(store.ok());
  auto d = (*store)->findDefender(inventory::hostnameKey(known));
  REQUIRE(d.ok());
  REQUIRE(d->has_value());
  CHECK((**d).lastSeen >= heldAt - Seconds(1));
}

TEST_CASE(
    "read-only file system: durable writes 503 storage_unavailable, reads work, nothing "
    "acknowledged is lost; after a remount the Console starts on the same database") {
  // Linux refuses `mount -o remount,ro` while a process holds files open for writing (EBUSY), so
  // a live Console meets a read-only file system when the kernel turns it read-only after an
  // error: ext4 with errors=remount-ro, the error injected through its sysfs trigger.
  const fs::path dir = scratch("ro");
  const fs::path data = dir / "data", image = dir / "fs.img";
  fs::create_directories(data);
  if (!canMount(data)) return;
  std::ofstream(image).close();
  fs::resize_file(image, 64 << 20);
  const std::string mountCmd =
      "mount -o loop,errors=remount-ro " + image.string() + " " + data.string() + " 2>&1";
  if (std::system(("mkfs.ext4 -q -F " + image.string() + " >/dev/null 2>&1").c_str()) != 0 ||
      std::system(mountCmd.c_str()) != 0) {
    WARN("NOT RUN: no mkfs.ext4 (e2fsprogs) or no loop device to mount an ext4 image");
    return;
  }
  struct Unmount {
    fs::path p, dir;
    ~Unmount() {
      ::umount2(p.c_str(), MNT_DETACH);
      fs::remove_all(dir);
    }
  } unmount{data, dir};
  std::string device;
  {
    std::ifstream mounts("/proc/self/mounts");
    std::string source, target, rest;
    while (mounts >> source >> target && std::getline(mounts, rest))
      if (target == data.string()) device = fs::path(source).filename();
  }
  const fs::path trigger = fs::path("/sys/fs/ext4") / device / "trigger_fs_error";
  if (device.empty() || !fs::exists(trigger)) {
    WARN("NOT RUN: no " << trigger << " to make the file system fail");
    return;
  }

  Ledger ledger;
  // Registrations answered 200 before the error was injected must all survive. Those answered
  // after it (their commit was in flight while the kernel handled the error) are counted and
  // reported only: in 3 of 12 runs one of them was missing (docs/reliability.md §6).
  std::set<std::string> answeredBefore, answeredAfter;
  {
    ConsoleChild console;
    console.start(data, kFlushMs, dir / "console.log", dir / "ports");
    const std::string credential = enrolmentCredential(console.consolePort);
    LoadThreads threads(console.defenderPort, credential, "r", ledger);
    REQUIRE(waitFor([&] { return registeredCount(ledger) >= 100; }, 60s));

    const TimePoint triggeredAt = SystemClock().now();
    std::ofstream(trigger) << "operations_test: read-only file system under load\n";
    INFO("log: " << (dir / "console.log"));
    REQUIRE(waitFor(
        [&] {
          std::lock_guard lock(ledger.mutex);
          return ledger.refusedStorage > 0;
        },
        60s));
    checkDuringFault(console, credential, ledger, "r-during-fault");
    threads.join();
    // A stop on a read-only file system ends cleanly (the final flush fails and says so).
    CHECK(console.stop(SIGTERM) == 0);
    std::lock_guard lock(ledger.mutex);
    CHECK(ledger.refusedOther == 0);
    for (const auto& [host, at] : ledger.answeredAt)
      (at < triggeredAt ? answeredBefore : answeredAfter).insert(host);
  }
  CHECK(fileText(dir / "console.log").find("storage does not accept writes") != std::string::npos);

  // The operator's repair: unmount, check, mount read-write, start the Console again.
  REQUIRE(::umount(data.c_str()) == 0);
  const int fsck = std::system(("e2fsck -fy " + image.string() + " >/dev/null 2>&1").c_str());
  CHECK(WEXITSTATUS(fsck) <= 1);  // 0 clean, 1 errors corrected
  REQUIRE(std::system(mountCmd.c_str()) == 0);
  REQUIRE(integrityCheck(data / "console.db") == "ok");
  requireStored(data / "console.db", answeredBefore);
  WARN("read-only: " << answeredBefore.size() << " registrations answered 200 before the error, "
                     << "lost 0; " << answeredAfter.size() << " answered after it, lost "
                     << missingFrom(data / "console.db", answeredAfter).size() << "; "
                     << ledger.refusedStorage << " refused 503 storage_unavailable");
  ConsoleChild console;
  console.start(data, kFlushMs, dir / "console.log", dir / "ports");
  const std::string credential = enrolmentCredential(console.consolePort);
  httplib::Client channel("127.0.0.1", console.defenderPort);
  channel.set_bearer_token_auth(credential.c_str());
  auto r =
      channel.Post("/api/v1/defender/heartbeat", heartbeat("r-after-remount"), "application/json");
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(console.stop(SIGTERM) == 0);
}
