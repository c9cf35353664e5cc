// The Console API on the event-driven front (`--console-front asio`): operators are answered
// while many idle and slow connections are held, slow heads are closed, the per-address cap,
// CSV downloads streamed with chunked encoding (gzip when offered), HEAD. Real sockets, port 0,
// a manual clock; no timing assertions beyond generous client timeouts.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <zlib.h>

#include <httplib.h>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "auth/service.h"
#include "main/config.h"
#include "main/console_app.h"
#include "tests/support/numbered.h"

using namespace dc;
using nlohmann::json;

namespace {

const TimePoint kT0 = TimePoint(Millis(1'800'000'000'000));
const std::string kAdminPassword = "console-front-admin-password";
const std::string kBasic = "Authorization: Basic YWRtaW46Y29uc29sZS1mcm9udC1hZG1pbi1wYXNzd29yZA==";

ConsoleConfig asioConsole() {
  ConsoleConfig c;
  c.database = ":memory:";
  c.host = "127.0.0.1";
  c.consolePort = 0;
  c.defenderPort = 0;
  c.uiDir = "/nonexistent";
  c.flushInterval = Millis(50);
  c.plainHttp = true;
  c.consoleFront = "asio";
  c.adminPassword = kAdminPassword;
  c.passwordIterations = 1000;
  c.pauseThreshold = Millis(0);
  return c;
}

struct RunningConsole {
  ManualClock clock{kT0};
  ConsoleApp app;
  explicit RunningConsole(ConsoleConfig c) : app(std::move(c), clock, "test") {
    const Status st = app.start(/*startScheduler=*/false);
    if (!st.ok()) FAIL("Console did not start: " << st.error().message);
  }
  httplib::Client operatorClient() {
    httplib::Client client("127.0.0.1", app.consolePort());
    client.set_basic_auth("admin", kAdminPassword);
    client.set_connection_timeout(5);
    client.set_read_timeout(5);
    return client;
  }
};

/// A connected TCP socket to 127.0.0.1:`port` (-1 on failure), reads bounded by 10 s.
int connectTo(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

bool sendAll(int fd, const std::string& text) {
  size_t sent = 0;
  while (sent < text.size()) {
    const ssize_t n = ::send(fd, text.data() + sent, text.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

/// Everything the server sends until it closes (or 10 s pass without a byte).
std::string readToClose(int fd) {
  std::string out;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

/// Reads one answer's head (through the blank line).
std::string readHead(int fd) {
  std::string out;
  char c;
  while (out.find("\r\n\r\n") == std::string::npos && ::recv(fd, &c, 1, 0) == 1) out += c;
  return out;
}

/// Decodes a chunked body; `chunks` counts its chunks.
std::string unchunk(const std::string& body, size_t* chunks) {
  std::string out;
  size_t pos = 0;
  *chunks = 0;
  for (;;) {
    const size_t eol = body.find("\r\n", pos);
    if (eol == std::string::npos) return out;
    const size_t size = std::stoul(body.substr(pos, eol - pos), nullptr, 16);
    if (size == 0) return out;
    out += body.substr(eol + 2, size);
    ++*chunks;
    pos = eol + 2 + size + 2;
  }
}

/// Decompresses a gzip stream ("" when it is not one).
std::string gunzip(const std::string& in) {
  z_stream z{};
  if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) return {};
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  std::string out;
  char buf[65536];
  int rc = Z_OK;
  while (rc == Z_OK) {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof buf;
    rc = inflate(&z, Z_NO_FLUSH);
    out.append(buf, sizeof buf - z.avail_out);
  }
  inflateEnd(&z);
  return rc == Z_STREAM_END ? out : std::string();
}

struct Sockets {
  std::vector<int> fds;
  ~Sockets() {
    for (int fd : fds) ::close(fd);
  }
};

void raiseFileLimit() {
  rlimit r{};
  if (::getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
    r.rlim_cur = r.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &r);
  }
}

}  // namespace

TEST_CASE("Console asio front: operators are answered while idle and slow connections are held") {
  raiseFileLimit();
  ConsoleConfig cfg = asioConsole();
  cfg.consoleMaxConnectionsPerAddress = 0;  // every connection here comes from 127.0.0.1
  cfg.consoleHeaderTimeoutSeconds = 60;     // the slow heads stay open for the whole test
  RunningConsole c(cfg);
  const int port = c.app.consolePort();
  constexpr int kIdle = 1000, kSlow = 200;
  Sockets held;
  for (int i = 0; i < kIdle; ++i) {
    const int fd = connectTo(port);
    REQUIRE(fd >= 0);
    held.fds.push_back(fd);
  }
  for (int i = 0; i < kSlow; ++i) {
    const int fd = connectTo(port);
    REQUIRE(fd >= 0);
    held.fds.push_back(fd);
    REQUIRE(sendAll(fd, "GET /api/v1/defenders HTTP/1.1\r\nHost: console\r\nX-Slow: "));
  }
  auto client = c.operatorClient();
  auto list = client.Get("/api/v1/defenders");
  REQUIRE(list);
  CHECK(list->status == 200);
  CHECK(list->get_header_value("Total-Count") == "0");
  auto ping = client.Get("/api/v1/_ping");
  REQUIRE(ping);
  CHECK(ping->status == 200);
  CHECK(ping->get_header_value("X-Frame-Options") == "DENY");
  // Accepted in order: by now every held connection is counted.
  auto metrics = client.Get("/metrics");
  REQUIRE(metrics);
  const std::string key = "dc_open_connections{listener=\"console\"} ";
  const size_t at = metrics->body.find(key);
  REQUIRE(at != std::string::npos);
  CHECK(std::stoul(metrics->body.substr(at + key.size())) >= size_t{kIdle + kSlow});
}

TEST_CASE("Console asio front: a request head not complete within the header timeout is closed") {
  ConsoleConfig cfg = asioConsole();
  cfg.consoleHeaderTimeoutSeconds = 1;
  RunningConsole c(cfg);
  Sockets held;
  const int fd = connectTo(c.app.consolePort());
  REQUIRE(fd >= 0);
  held.fds.push_back(fd);
  REQUIRE(sendAll(fd, "GET /api/v1/_ping HTTP/1.1\r\nHost: console\r\n"));
  char buf[256];
  errno = 0;
  const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
  // Closed without an answer (EOF, or a reset), not left open until the 10 s read bound.
  INFO("recv " << n << " errno " << errno);
  CHECK((n == 0 || (n < 0 && errno == ECONNRESET)));
}

TEST_CASE("Console asio front: connections beyond the per-address cap are answered 429") {
  ConsoleConfig cfg = asioConsole();
  cfg.consoleMaxConnectionsPerAddress = 2;
  RunningConsole c(cfg);
  const int port = c.app.consolePort();
  Sockets held;
  for (int i = 0; i < 2; ++i) {
    const int fd = connectTo(port);
    REQUIRE(fd >= 0);
    held.fds.push_back(fd);
    REQUIRE(sendAll(fd, "GET /api/v1/_ping HTTP/1.1\r\nHost: console\r\n\r\n"));
    CHECK(readHead(fd).rfind("HTTP/1.1 200", 0) == 0);
    char body[15];  // {"status":"ok"}
    CHECK(::recv(fd, body, sizeof body, MSG_WAITALL) == 15);
  }
  auto client = c.operatorClient();
  auto refused = client.Get("/api/v1/_ping");
  REQUIRE(refused);
  CHECK(refused->status == 429);
  CHECK(refused->get_header_value("Retry-After") == "5");
  CHECK(json::parse(refused->body)["code"] == "too_many_connections");
  // A held connection is still served (keep-alive), and its answers carry the security headers.
  REQUIRE(sendAll(held.fds[0], "HEAD /api/v1/_ping HTTP/1.1\r\nHost: console\r\n\r\n"));
  const std::string head = readHead(held.fds[0]);
  CHECK(head.rfind("HTTP/1.1 200", 0) == 0);
  CHECK(head.find("Content-Length: 15\r\n") != std::string::npos);  // {"status":"ok"}
  CHECK(head.find("X-Content-Type-Options: nosniff\r\n") != std::string::npos);
}

TEST_CASE("Console asio front: the CSV download is streamed with chunked encoding") {
  RunningConsole c(asioConsole());
  auto credential = c.app.auth().issueCredential("", "console_front_test");
  REQUIRE(credential.ok());
  httplib::Client channel("127.0.0.1", c.app.defenderPort());
  channel.set_bearer_token_auth(credential->secret);
  constexpr int kDefenders = 2100;  // three pieces of the download (1,000 rows each)
  for (int i = 0; i < kDefenders; ++i) {
    auto r = channel.Post(
        "/api/v1/defender/heartbeat",
        json{{"hostname", dc::testing::numbered("node-", i)}, {"type", "docker"}}.dump(),
        "application/json");
    REQUIRE(r);
    REQUIRE(r->status == 200);
  }
  // Accept-Encoding offered → whether the answer is gzip: `gzip;q=0` refuses it (RFC 9110).
  const std::vector<std::pair<std::string, bool>> offers = {
      {"", false},
      {"Accept-Encoding: gzip, deflate, br\r\n", true},
      {"Accept-Encoding: br;q=1.0, GZip;q=0.5\r\n", true},
      {"Accept-Encoding: gzip;q=0, identity\r\n", false}};
  for (const auto& [offer, gzip] : offers) {
    DYNAMIC_SECTION("Accept-Encoding offered: '" << offer << "'") {
      Sockets held;
      const int fd = connectTo(c.app.consolePort());
      REQUIRE(fd >= 0);
      held.fds.push_back(fd);
      REQUIRE(sendAll(fd, "GET /api/v1/defenders/download HTTP/1.1\r\nHost: console\r\n" + kBasic +
                              "\r\n" + offer + "Connection: close\r\n\r\n"));
      const std::string answer = readToClose(fd);
      const size_t end = answer.find("\r\n\r\n");
      REQUIRE(end != std::string::npos);
      const std::string head = answer.substr(0, end + 2);
      INFO(head);
      CHECK(head.rfind("HTTP/1.1 200", 0) == 0);
      CHECK(head.find("Transfer-Encoding: chunked\r\n") != std::string::npos);
      CHECK(head.find("Content-Length") == std::string::npos);
      CHECK(head.find("Content-Type: text/csv; charset=utf-8\r\n") != std::string::npos);
      size_t chunks = 0;
      std::string body = unchunk(answer.substr(end + 4), &chunks);
      CHECK(chunks >= 2);  // pieces sent as produced
      CHECK((head.find("Content-Encoding: gzip\r\n") != std::string::npos) == gzip);
      if (gzip) body = gunzip(body);
      size_t lines = 0;
      for (char ch : body) lines += ch == '\n';
      CHECK(lines == kDefenders + 1);  // the header and every Defender
      CHECK(body.rfind("hostname", 0) == 0);
    }
  }
}

TEST_CASE("Console asio front: a request followed by a half-close is answered, then closed") {
  RunningConsole c(asioConsole());
  Sockets held;
  const int fd = connectTo(c.app.consolePort());
  REQUIRE(fd >= 0);
  held.fds.push_back(fd);
  std::string request = "GET /api/v1/_ping HTTP/1.1\r\nHost: console\r\n";
  request += kBasic;  // appended: "lit" + std::string trips GCC 12's -Wrestrict at -O2
  request += "\r\n\r\n";
  REQUIRE(sendAll(fd, request));
  ::shutdown(fd, SHUT_WR);                     // the request is complete; nothing more will come
  const std::string answer = readToClose(fd);  // ends at the Console's close, or after 10 s
  CHECK(answer.starts_with("HTTP/1.1 200"));
  char c0;
  errno = 0;
  const ssize_t n = ::recv(fd, &c0, 1, 0);
  INFO("recv " << n << " errno " << errno);
  CHECK(n == 0);  // closed by the Console, not left open until the read bound
}
