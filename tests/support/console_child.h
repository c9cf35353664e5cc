// A real defender-console child process for the reliability tests: plain HTTP on port 0 (ports
// read from --port-file), a known admin password, SIGKILL or SIGTERM to end it. Tests that use it
// define DC_CONSOLE_BIN (the executable) through CMake.
#pragma once

#include <catch2/catch.hpp>

#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#ifndef DC_CONSOLE_BIN
#error "DC_CONSOLE_BIN must name the defender-console executable"
#endif

namespace dc::testing {

inline constexpr const char* kChildAdminPassword = "reliability-test-admin-password";

/// One child Console on `dataDir`. Its output goes to `logFile` (default <dataDir>/console.log)
/// and its ports file to `portFile` (default <dataDir>/ports): tests that fill the data
/// directory's file system put both elsewhere.
struct ConsoleChild {
  pid_t pid = -1;
  int consolePort = 0;
  int defenderPort = 0;

  /// Options appended to the command line (e.g. {"--database", url, "--sweep-interval", "1"});
  /// set before start(). Later flags win over the defaults above them.
  std::vector<std::string> extraArgs;
  std::filesystem::path logPath;   // where the child's output goes (set by launch)
  std::filesystem::path portPath;  // its ports file (set by launch)

  void start(const std::filesystem::path& dataDir, int flushMs, std::filesystem::path logFile = {},
             std::filesystem::path portFile = {}) {
    launch(dataDir, flushMs, std::move(logFile), std::move(portFile));
    awaitPorts();
  }

  /// Starts the child and returns at once (several children may then start together);
  /// awaitPorts() waits until it is ready.
  void launch(const std::filesystem::path& dataDir, int flushMs, std::filesystem::path logFile = {},
              std::filesystem::path portFile = {}) {
    if (logFile.empty()) logFile = dataDir / "console.log";
    if (portFile.empty()) portFile = dataDir / "ports";
    logPath = logFile;
    portPath = portFile;
    std::filesystem::remove(portFile);
    std::vector<std::string> args{DC_CONSOLE_BIN,
                                  "--data-dir",
                                  dataDir.string(),
                                  "--console-port",
                                  "0",
                                  "--defender-port",
                                  "0",
                                  "--port-file",
                                  portFile.string(),
                                  "--flush-interval-ms",
                                  std::to_string(flushMs),
                                  "--log-level",
                                  "info",
                                  "--plain-http",
                                  "--password-iterations",
                                  "1000"};
    args.insert(args.end(), extraArgs.begin(), extraArgs.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const std::string log = logFile.string();
    std::fflush(nullptr);  // or the child flushes the parent's buffered output again
    pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      FILE* f = std::freopen(log.c_str(), "a", stdout);
      if (f) (void)dup2(fileno(stdout), STDERR_FILENO);
      // Plain HTTP with a known admin (created on the first start) keeps the load cheap.
      setenv("DC_ADMIN_PASSWORD", kChildAdminPassword, 1);
      execv(DC_CONSOLE_BIN, argv.data());
      _exit(127);
    }
  }

  /// Waits (at most 30 s) for the ports file of the child launch() started and reads the ports.
  void awaitPorts() {
    using namespace std::chrono_literals;
    for (int i = 0; i < 3000 && !std::filesystem::exists(portPath); ++i) {
      int status = 0;
      if (waitpid(pid, &status, WNOHANG) == pid) {
        pid = -1;
        FAIL("Console exited during start-up; log: " << logPath.string());
      }
      std::this_thread::sleep_for(10ms);
    }
    INFO("log: " << logPath.string());
    REQUIRE(std::filesystem::exists(portPath));
    std::ifstream in(portPath);
    std::string line;
    while (std::getline(in, line))
      if (line.rfind("defender=", 0) == 0)
        defenderPort = std::stoi(line.substr(9));
      else if (line.rfind("console=", 0) == 0)
        consolePort = std::stoi(line.substr(8));
    REQUIRE(defenderPort > 0);
    REQUIRE(consolePort > 0);
  }

  /// Sends `signal` (e.g. SIGSTOP, SIGCONT) without waiting for anything.
  void signal(int signal) const {
    if (pid > 0) ::kill(pid, signal);
  }

  /// Ends the child with `signal` and returns its exit code (128 + signal when killed by it).
  int stop(int signal) {
    if (pid <= 0) return -1;
    ::kill(pid, signal);
    int status = 0;
    waitpid(pid, &status, 0);
    pid = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  /// Sends `signal` and waits at most `bound` for the child to end: its exit code as stop()
  /// does, or -2 when it did not end in time (it is then killed with SIGKILL).
  int stopWithin(int signal, std::chrono::milliseconds bound) {
    using namespace std::chrono_literals;
    if (pid <= 0) return -1;
    ::kill(pid, signal);
    const auto deadline = std::chrono::steady_clock::now() + bound;
    int status = 0;
    while (waitpid(pid, &status, WNOHANG) != pid) {
      if (std::chrono::steady_clock::now() >= deadline) {
        kill9();
        return -2;
      }
      std::this_thread::sleep_for(20ms);
    }
    pid = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  void kill9() { stop(SIGKILL); }
  ~ConsoleChild() { kill9(); }
};

/// Runs defender-console with `args` to completion, output appended to `logFile`; returns its
/// exit code.
inline int runConsoleCommand(const std::vector<std::string>& args,
                             const std::filesystem::path& logFile) {
  std::fflush(nullptr);
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    FILE* f = std::freopen(logFile.c_str(), "a", stdout);
    if (f) (void)dup2(fileno(stdout), STDERR_FILENO);
    std::vector<char*> argv{const_cast<char*>(DC_CONSOLE_BIN)};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(DC_CONSOLE_BIN, argv.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/// `PRAGMA integrity_check` of the database file: "ok" or the first problem.
inline std::string integrityCheck(const std::filesystem::path& db) {
  sqlite3* conn = nullptr;
  std::string result = "cannot open";
  if (sqlite3_open_v2(db.c_str(), &conn, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK) {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(conn, "PRAGMA integrity_check", -1, &stmt, nullptr) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW)
      result = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    sqlite3_finalize(stmt);
  }
  sqlite3_close(conn);
  return result;
}

}  // namespace dc::testing
