// The event-driven defender channel (channel/asio_listener.h) on real sockets, port 0: a fleet
// with one keep-alive connection per Defender, slow and idle clients, the per-address cap, body
// limits and shedding. Waits are bounded socket reads, never sleeps.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <future>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "auth/service.h"
#include "channel/asio_listener.h"
#include "main/console_app.h"

using namespace dc;
using nlohmann::json;

namespace {

const TimePoint kT0 = TimePoint(Millis(1'800'000'000'000));

struct Answer {
  int status = 0;
  std::string head;
  std::string body;
};

/// A blocking client connection on its own socket; reads are bounded by a 20 s timeout so that
/// a misbehaving server fails the test instead of hanging it.
class Connection {
 public:
  explicit Connection(int port) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    REQUIRE(fd_ >= 0);
    timeval tv{20, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  }
  ~Connection() {
    if (fd_ >= 0) ::close(fd_);
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  void send(const std::string& bytes) {
    size_t sent = 0;
    while (sent < bytes.size()) {
      const ssize_t w = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (w <= 0) return;  // the server closed: the answer (if any) is read next
      sent += static_cast<size_t>(w);
    }
  }
  /// One answer (head + Content-Length body), or nullopt when the server closed first.
  std::optional<Answer> read() {
    for (;;) {
      const auto end = in_.find("\r\n\r\n");
      if (end != std::string::npos) {
        Answer a;
        a.head = in_.substr(0, end);
        a.status = std::stoi(a.head.substr(9, 3));
        size_t length = 0;
        if (auto pos = a.head.find("Content-Length: "); pos != std::string::npos)
          length = std::stoul(a.head.substr(pos + 16));
        if (in_.size() >= end + 4 + length) {
          a.body = in_.substr(end + 4, length);
          in_.erase(0, end + 4 + length);
          return a;
        }
      }
      char buf[8192];
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) return std::nullopt;
      in_.append(buf, static_cast<size_t>(n));
    }
  }
  /// Shuts down the write side (the server reads end of stream after what was sent).
  void shutdownWrite() { ::shutdown(fd_, SHUT_WR); }
  /// True when the server closed the connection (a read returns end of stream, not a timeout).
  bool closedByServer() {
    char buf[256];
    for (;;) {
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n == 0) return true;
      if (n < 0) return errno == ECONNRESET;
    }
  }

 private:
  int fd_;
  std::string in_;
};

std::string post(const std::string& path, const std::string& body,
                 const std::string& credential = {}) {
  return "POST " + path + " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" +
         (credential.empty() ? std::string() : "Authorization: Bearer " + credential + "\r\n") +
         "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

std::string heartbeat(const std::string& host, const std::string& credential) {
  return post("/api/v1/defender/heartbeat", json{{"hostname", host}, {"type", "docker"}}.dump(),
              credential);
}

void checkError(const std::optional<Answer>& a, int status, const std::string& code) {
  REQUIRE(a);
  INFO(a->head << "\n\n" << a->body);
  CHECK(a->status == status);
  const auto body = json::parse(a->body, nullptr, false);
  REQUIRE(body.is_object());
  CHECK(body.value("code", "") == code);
  CHECK(!body.value("message", "").empty());
  CHECK(body.value("err", "") == body.value("message", ""));
}

/// Raises the soft descriptor limit to the hard one; returns the limit now in force.
rlim_t raiseFileLimit() {
  rlimit r{};
  REQUIRE(::getrlimit(RLIMIT_NOFILE, &r) == 0);
  r.rlim_cur = r.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &r);
  REQUIRE(::getrlimit(RLIMIT_NOFILE, &r) == 0);
  return r.rlim_cur;
}

ConsoleConfig asioConfig() {
  ConsoleConfig c;
  c.database = ":memory:";
  c.host = "127.0.0.1";
  c.consolePort = 0;
  c.defenderPort = 0;
  c.uiDir = "/nonexistent";
  c.flushInterval = Millis(20);
  c.plainHttp = true;
  c.adminPassword = "channel-admin-password";
  c.passwordIterations = 1000;
  c.pauseThreshold = Millis(0);
  c.defenderFront = "asio";
  c.defenderIoThreads = 2;
  c.defenderMaxBodyBytes = 64 * 1024;
  return c;
}

struct RunningConsole {
  ManualClock clock{kT0};
  ConsoleApp app;
  std::string credential;

  explicit RunningConsole(ConsoleConfig c) : app(std::move(c), clock, "test") {
    const Status st = app.start(/*startScheduler=*/false);
    if (!st.ok()) FAIL("Console did not start: " << st.error().message);
    auto issued = app.auth().issueCredential("", "defender_channel_test");
    REQUIRE(issued.ok());
    credential = issued->secret;
  }
  long long connectedCount() {
    httplib::Client api("127.0.0.1", app.consolePort());
    api.set_basic_auth("admin", "channel-admin-password");
    auto r = api.Get("/api/v1/defenders?connected=true&limit=1");
    REQUIRE(r);
    REQUIRE(r->status == 200);
    return std::stoll(r->get_header_value("Total-Count"));
  }
};

}  // namespace

TEST_CASE("asio front: 2,000 Defenders, each on its own keep-alive connection, all answered") {
  constexpr int kFleet = 2000;
  if (raiseFileLimit() < 2 * kFleet + 200) {
    WARN("RLIMIT_NOFILE too low for " << kFleet << " connections on both ends: NOT RUN");
    return;
  }
  RunningConsole c(asioConfig());
  std::vector<std::unique_ptr<Connection>> fleet;
  fleet.reserve(kFleet);
  for (int i = 0; i < kFleet; ++i)
    fleet.push_back(std::make_unique<Connection>(c.app.defenderPort()));
  // Every Defender sends before any answer is read: all 2,000 requests are in flight at once.
  for (int i = 0; i < kFleet; ++i)
    fleet[i]->send(heartbeat("fleet-" + std::to_string(i), c.credential));
  int answered = 0, registered = 0;
  for (int i = 0; i < kFleet; ++i) {
    auto a = fleet[i]->read();
    if (a && a->status == 200) {
      ++answered;
      const auto body = json::parse(a->body);
      if (body.value("registered", false) &&
          body.value("hostname", "") == "fleet-" + std::to_string(i))
        ++registered;
    }
  }
  CHECK(answered == kFleet);
  CHECK(registered == kFleet);
  // The connections were kept: a second heartbeat on each, the same connection, refreshes.
  for (int i = 0; i < kFleet; ++i)
    fleet[i]->send(heartbeat("fleet-" + std::to_string(i), c.credential));
  int refreshed = 0;
  for (int i = 0; i < kFleet; ++i) {
    auto a = fleet[i]->read();
    if (a && a->status == 200 && !json::parse(a->body).value("registered", true)) ++refreshed;
  }
  CHECK(refreshed == kFleet);
  CHECK(c.connectedCount() == kFleet);
}

TEST_CASE("asio front: a slow request head is closed while other Defenders are served") {
  ConsoleConfig cfg = asioConfig();
  cfg.defenderHeaderTimeoutSeconds = 1;
  RunningConsole c(cfg);
  Connection slow(c.app.defenderPort());
  slow.send("POST /api/v1/defender/heartbeat HTTP/1.1\r\nHost: x\r\n");  // and never the rest
  Connection quiet(c.app.defenderPort());                                // sends nothing
  Connection other(c.app.defenderPort());
  other.send(heartbeat("served-1", c.credential));
  auto a = other.read();
  REQUIRE(a);
  CHECK(a->status == 200);
  CHECK(slow.closedByServer());
  CHECK(quiet.closedByServer());
  // The served connection is kept between requests (the idle timeout is 120 s).
  other.send(heartbeat("served-1", c.credential));
  auto b = other.read();
  REQUIRE(b);
  CHECK(b->status == 200);
  CHECK(c.connectedCount() == 1);
}

TEST_CASE("asio front: connections beyond the per-address cap get 429 too_many_connections") {
  ConsoleConfig cfg = asioConfig();
  cfg.defenderMaxConnectionsPerAddress = 3;
  RunningConsole c(cfg);
  std::vector<std::unique_ptr<Connection>> held;
  for (int i = 0; i < 3; ++i) {
    held.push_back(std::make_unique<Connection>(c.app.defenderPort()));
    held.back()->send(heartbeat("capped-" + std::to_string(i), c.credential));
    auto a = held.back()->read();  // answered: this connection is admitted and counted
    REQUIRE(a);
    CHECK(a->status == 200);
  }
  Connection extra(c.app.defenderPort());
  extra.send(heartbeat("capped-extra", c.credential));
  auto refused = extra.read();
  checkError(refused, 429, "too_many_connections");
  CHECK(refused->head.find("Retry-After: ") != std::string::npos);
  CHECK(extra.closedByServer());
  // The admitted connections keep working; nothing was written for the refused one.
  held[0]->send(heartbeat("capped-0", c.credential));
  auto again = held[0]->read();
  REQUIRE(again);
  CHECK(again->status == 200);
  CHECK(c.connectedCount() == 3);
}

TEST_CASE("asio front: request limits answer JSON errors and write nothing") {
  RunningConsole c(asioConfig());
  const int port = c.app.defenderPort();
  const std::string big =
      json{{"hostname", "too-big"}, {"type", "docker"}, {"pad", std::string(100 * 1024, 'x')}}
          .dump();
  SECTION("Content-Length beyond --defender-max-body-kib") {
    Connection k(port);
    k.send(post("/api/v1/defender/heartbeat", big, c.credential));
    checkError(k.read(), 413, "body_too_large");
  }
  SECTION("a chunked body beyond the limit") {
    Connection k(port);
    std::string req =
        "POST /api/v1/defender/heartbeat HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
        c.credential + "\r\nTransfer-Encoding: chunked\r\n\r\n";
    char size[16];
    std::snprintf(size, sizeof size, "%zx", big.size());
    req += std::string(size) + "\r\n" + big + "\r\n0\r\n\r\n";
    k.send(req);
    checkError(k.read(), 413, "body_too_large");
  }
  SECTION("POST without a length") {
    Connection k(port);
    k.send("POST /api/v1/defender/heartbeat HTTP/1.1\r\nHost: x\r\n\r\n");
    checkError(k.read(), 411, "length_required");
  }
  SECTION("too many headers") {
    Connection k(port);
    std::string req = "GET /healthz HTTP/1.1\r\nHost: x\r\n";
    for (int i = 0; i < 150; ++i) req += "X-H" + std::to_string(i) + ": v\r\n";
    k.send(req + "\r\n");
    checkError(k.read(), 431, "too_many_headers");
  }
  SECTION("a head beyond the header bytes") {
    Connection k(port);
    k.send("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(64 * 1024, 'a') +
           "\r\n\r\n");
    checkError(k.read(), 431, "headers_too_large");
  }
  SECTION("a malformed request line") {
    Connection k(port);
    k.send("NOT A REQUEST\r\n\r\n");
    checkError(k.read(), 400, "bad_request");
  }
  SECTION("no credential, and an unknown route") {
    Connection k(port);
    k.send(heartbeat("no-credential", ""));
    auto a = k.read();
    checkError(a, 401, "defender_credential_required");
    CHECK(a->head.find("WWW-Authenticate: Bearer") != std::string::npos);
    k.send(post("/api/v1/defender/nope", "{}", c.credential));
    checkError(k.read(), 404, "not_found");
  }
  CHECK(c.connectedCount() == 0);
}

TEST_CASE("asio front: beyond --defender-max-queued requests are shed with 503 and Retry-After") {
  // The listener alone, with one worker held busy by the test.
  std::promise<void> entered, release;
  auto releasedFuture = release.get_future().share();
  std::atomic<bool> first{true};
  channel::AsioListenerOptions options;
  options.host = "127.0.0.1";
  options.ioThreads = 2;
  options.workers = 1;
  options.maxQueued = 1;
  options.shedRetryAfter = [](const channel::Request&) { return 7; };
  channel::AsioListener listener(options, [&](const channel::Request& req) {
    if (first.exchange(false)) {
      entered.set_value();
      releasedFuture.wait();
    }
    return channel::jsonResponse(json{{"path", req.path}}.dump());
  });
  auto port = listener.start();
  REQUIRE(port.ok());
  Connection busy(*port), waiting(*port), shed(*port);
  busy.send(post("/a", "{}"));
  entered.get_future().wait();  // the only worker is now busy
  waiting.send(post("/b", "{}"));
  // Until the second request is queued, the third could be queued in its place.
  for (int i = 0; i < 1'000'000 && listener.load().queued < 1; ++i) std::this_thread::yield();
  REQUIRE(listener.load().queued == 1);
  shed.send(post("/c", "{}"));
  auto a = shed.read();
  checkError(a, 503, "overloaded");
  CHECK(a->head.find("Retry-After: 7") != std::string::npos);
  release.set_value();
  auto b = busy.read();
  REQUIRE(b);
  CHECK(json::parse(b->body)["path"] == "/a");
  auto w = waiting.read();
  REQUIRE(w);
  CHECK(json::parse(w->body)["path"] == "/b");
  CHECK(listener.load().shed == 1);
  // The shed connection stays open: its next request is served.
  shed.send(post("/d", "{}"));
  auto d = shed.read();
  REQUIRE(d);
  CHECK(d->status == 200);
  listener.stop();
}

TEST_CASE("asio front: a request followed by a half-close is answered, then the connection ends") {
  RunningConsole c(asioConfig());
  SECTION("POST heartbeat") {
    Connection k(c.app.defenderPort());
    k.send(heartbeat("half-closed", c.credential));
    k.shutdownWrite();  // shutdown(SHUT_WR): the request is complete, nothing more will come
    auto a = k.read();
    REQUIRE(a);
    CHECK(a->status == 200);
    CHECK(k.closedByServer());
    CHECK(c.connectedCount() == 1);
  }
  SECTION("GET /healthz") {
    Connection k(c.app.defenderPort());
    k.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    k.shutdownWrite();
    auto a = k.read();
    REQUIRE(a);
    CHECK(a->status == 200);
    CHECK(k.closedByServer());
  }
}

namespace {

/// A listener alone whose handler records every request it handles and holds the ones to
/// `/held` until released; the drain bound is measured on `clock`.
struct HeldListener {
  ManualClock clock{kT0};
  std::mutex mu;
  std::vector<std::string> recorded;  // paths handled, in order
  std::promise<void> entered;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::optional<channel::AsioListener> listener;
  int port = 0;

  explicit HeldListener(channel::AsioListenerOptions options = {}) {
    options.host = "127.0.0.1";
    options.ioThreads = 2;
    options.workers = 2;
    options.drainSeconds = 3;
    options.clock = &clock;
    listener.emplace(options, [this](const channel::Request& req) {
      if (req.path == "/held") {
        entered.set_value();
        released.wait();
      }
      {
        std::lock_guard lock(mu);
        recorded.push_back(req.path);
      }
      if (req.path == "/big") return channel::jsonResponse(std::string(8 << 20, ' ') + "{}");
      return channel::jsonResponse(json{{"path", req.path}}.dump());
    });
    auto p = listener->start();
    REQUIRE(p.ok());
    port = *p;
  }
  bool handled(const std::string& path) {
    std::lock_guard lock(mu);
    return std::find(recorded.begin(), recorded.end(), path) != recorded.end();
  }
};

/// True when a TCP connection to 127.0.0.1:`port` is refused (nothing listens there).
bool refused(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0;
  ::close(fd);
  return ok;
}

}  // namespace

TEST_CASE("asio front: stop answers the requests already received, then closes every connection") {
  HeldListener h;
  Connection idle(h.port), inFlight(h.port);
  idle.send(post("/warm", "{}"));
  auto w = idle.read();  // a keep-alive connection, idle at the stop
  REQUIRE(w);
  CHECK(w->status == 200);
  inFlight.send(post("/held", "{}"));
  h.entered.get_future().wait();  // the request is being handled
  auto stopped = std::async(std::launch::async, [&h] { h.listener->stop(); });
  // The stop has begun: the idle connection is closed without an answer and no new
  // connection is accepted, while the request in flight is still being handled.
  CHECK(idle.closedByServer());
  bool closedListener = false;
  for (int i = 0; i < 100000 && !closedListener; ++i) {
    closedListener = refused(h.port);
    if (!closedListener) std::this_thread::yield();
  }
  CHECK(closedListener);
  h.release.set_value();
  // The request in flight gets its answer, with Connection: close, then the connection ends.
  auto a = inFlight.read();
  REQUIRE(a);
  CHECK(a->status == 200);
  CHECK(json::parse(a->body)["path"] == "/held");
  CHECK(a->head.find("Connection: close") != std::string::npos);
  CHECK(inFlight.closedByServer());
  REQUIRE(stopped.wait_for(std::chrono::seconds(20)) == std::future_status::ready);
  CHECK(h.handled("/held"));
}

TEST_CASE(
    "asio front: a client that does not read its answer holds a stop at most the drain bound") {
  channel::AsioListenerOptions o;
  o.bodyTimeoutSeconds = 600;  // only the drain bound can end the write below
  HeldListener h(o);
  Connection idle(h.port), stuck(h.port);
  stuck.send("GET /big HTTP/1.1\r\nHost: x\r\n\r\n");  // 8 MiB, never read
  for (int i = 0; i < 1'000'000 && !h.handled("/big"); ++i) std::this_thread::yield();
  REQUIRE(h.handled("/big"));
  auto stopped = std::async(std::launch::async, [&h] { h.listener->stop(); });
  // The stop has begun (and taken its start time) once the idle connection is closed. The
  // answer cannot be written whole while the client does not read (and the write timeout is
  // 10 minutes): the stop waits for it until its drain bound, 3 s on the listener's clock.
  CHECK(idle.closedByServer());
  h.clock.advance(Seconds(3));
  REQUIRE(stopped.wait_for(std::chrono::seconds(20)) == std::future_status::ready);
}
