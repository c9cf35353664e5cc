// The WebSocket transport of the defender channel (docs/defender-channel.md, "WebSocket
// transport") on real sockets, port 0, with a Beast client: the upgrade and its refusals, App ID
// scope per connection, messages and their results, the hostname binding, bad frames and their
// close codes (nothing written), pings, pushes, a dropped socket, the Console stopping and a
// few hundred sessions at once. Waits are bounded socket reads; liveness uses the injected clock.
#include <catch2/catch.hpp>

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <httplib.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>

#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "auth/service.h"
#include "channel/asio_listener.h"
#include "inventory/inventory.h"
#include "main/console_app.h"

using namespace dc;
using nlohmann::json;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

namespace {

const TimePoint kT0 = TimePoint(Millis(1'800'000'000'000));

/// Joins `parts` by appending: `"lit" + std::string` makes GCC 12 report a false -Wrestrict at -O2.
std::string cat(std::initializer_list<std::string_view> parts) {
  std::string out;
  for (auto p : parts) out += p;
  return out;
}
constexpr const char* kAdminPassword = "ws-admin-password";

ConsoleConfig wsConfig() {
  ConsoleConfig c;
  c.database = ":memory:";
  c.host = "127.0.0.1";
  c.consolePort = 0;
  c.defenderPort = 0;
  c.uiDir = "/nonexistent";
  c.flushInterval = Millis(20);
  c.plainHttp = true;
  c.adminPassword = kAdminPassword;
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
  std::string credentialId;

  explicit RunningConsole(ConsoleConfig c) : app(std::move(c), clock, "test") {
    const Status st = app.start(/*startScheduler=*/false);
    if (!st.ok()) FAIL("Console did not start: " << st.error().message);
    auto issued = app.auth().issueCredential("", "defender_ws_test");
    REQUIRE(issued.ok());
    credential = issued->secret;
    credentialId = issued->record.id;
  }
  httplib::Client api() {
    httplib::Client c("127.0.0.1", app.consolePort());
    c.set_basic_auth("admin", kAdminPassword);
    return c;
  }
  long long connectedCount() {
    auto r = api().Get("/api/v1/defenders?connected=true&limit=1");
    REQUIRE(r);
    REQUIRE(r->status == 200);
    return std::stoll(r->get_header_value("Total-Count"));
  }
  bool known(const std::string& hostname) {
    auto d = app.inventory().find(hostname);
    REQUIRE(d.ok());
    return d->has_value();
  }
  std::string metrics() {
    auto r = api().Get("/metrics");
    REQUIRE(r);
    return r->body;
  }
};

/// Sets a 20 s receive/send timeout on `s` so that a misbehaving server fails the test instead
/// of hanging it.
void boundReads(tcp::socket& s) {
  timeval tv{20, 0};
  ::setsockopt(s.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(s.native_handle(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

/// A WebSocket client on a plain (`tcp::socket`) or TLS stream.
template <class Next>
class Client {
 public:
  Client(asio::io_context& ioc, int port, ssl::context* tls = nullptr)
      : ioc_(ioc), ws_(make(ioc, tls)) {
    auto& sock = beast::get_lowest_layer(ws_);
    sock.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<uint16_t>(port)));
    boundReads(sock);
    if constexpr (!std::is_same_v<Next, tcp::socket>)
      ws_.next_layer().handshake(ssl::stream_base::client);
  }

  /// The upgrade with `credential` ("" = none) at `path`: true when accepted; else `refusal`
  /// holds the HTTP answer.
  bool upgrade(const std::string& credential, const std::string& path = "/api/v1/defender/ws") {
    ws_.set_option(websocket::stream_base::decorator([credential](websocket::request_type& req) {
      if (!credential.empty())
        req.set(beast::http::field::authorization, cat({"Bearer ", credential}));
    }));
    // The asynchronous handshake keeps the answer of a declined upgrade (the synchronous one
    // drops it).
    std::optional<beast::error_code> done;
    ws_.async_handshake(refusal, "127.0.0.1", path, [&done](beast::error_code ec) { done = ec; });
    ioc_.restart();
    while (!done && ioc_.run_one() > 0) {
    }
    REQUIRE(done);
    return !*done;
  }

  void send(const std::string& text) { ws_.write(asio::buffer(text)); }
  void sendBinary(const std::string& bytes) {
    ws_.binary(true);
    ws_.write(asio::buffer(bytes));
    ws_.binary(false);
  }
  /// The next message as JSON (fails the test on a close or error).
  json next() {
    beast::flat_buffer b;
    beast::error_code ec;
    ws_.read(b, ec);
    INFO(ec.message() << " close " << ws_.reason().code << " " << ws_.reason().reason);
    REQUIRE(!ec);
    return json::parse(beast::buffers_to_string(b.data()));
  }
  /// Sends `{"type", "id", "body"}` and returns the result.
  json call(const std::string& type, const json& body, int id = 1) {
    send(json{{"type", type}, {"id", id}, {"body", body}}.dump());
    json r = next();
    CHECK(r.value("type", "") == "result");
    CHECK(r.value("id", 0) == id);
    return r;
  }
  /// Reads until the connection closes; returns the close frame's code and reason (code 0 when
  /// it ended without one).
  std::pair<int, std::string> closed() {
    beast::flat_buffer b;
    for (;;) {
      beast::error_code ec;
      ws_.read(b, ec);
      b.consume(b.size());
      if (ec == websocket::error::closed)
        return {static_cast<int>(ws_.reason().code),
                std::string(ws_.reason().reason.data(), ws_.reason().reason.size())};
      if (ec) return {0, ec.message()};
    }
  }
  websocket::stream<Next>& ws() { return ws_; }
  websocket::response_type refusal;

 private:
  static websocket::stream<Next> make(asio::io_context& ioc, ssl::context* tls) {
    if constexpr (std::is_same_v<Next, tcp::socket>)
      return websocket::stream<Next>(ioc);
    else
      return websocket::stream<Next>(ioc, *tls);
  }
  asio::io_context& ioc_;
  websocket::stream<Next> ws_;
};

using Plain = Client<tcp::socket>;
using Tls = Client<ssl::stream<tcp::socket>>;

json heartbeatBody(const std::string& host) {
  return json{{"hostname", host}, {"type", "docker"}};
}

std::string codeOf(const std::string& body) {
  auto j = json::parse(body, nullptr, false);
  return j.is_object() ? j.value("code", "") : "";
}

/// The head of an upgrade request at /api/v1/defender/ws with `key`, through its blank line.
std::string upgradeRequest(const std::string& key, const std::string& credential) {
  return cat({"GET /api/v1/defender/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n",
              "Connection: Upgrade\r\nSec-WebSocket-Key: ", key,
              "\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer ", credential, "\r\n\r\n"});
}

/// A client's text frame (masked, as RFC 6455 §5.3 requires of clients), payload < 64 KiB.
std::string maskedTextFrame(const std::string& payload) {
  std::string f;
  f += static_cast<char>(0x81);  // FIN, text
  if (payload.size() < 126) {
    f += static_cast<char>(0x80 | payload.size());
  } else {
    f += static_cast<char>(0x80 | 126);
    f += static_cast<char>(payload.size() >> 8);
    f += static_cast<char>(payload.size() & 0xff);
  }
  const char mask[4] = {0x12, 0x34, 0x56, 0x78};
  f.append(mask, 4);
  for (size_t i = 0; i < payload.size(); ++i) f += static_cast<char>(payload[i] ^ mask[i % 4]);
  return f;
}

/// A raw client socket: reads until `done(bytes so far)` holds or the connection ends (reads
/// bounded by 20 s); returns what arrived.
template <class Done>
std::string readUntil(tcp::socket& s, Done done) {
  std::string in;
  char buf[4096];
  while (!done(in)) {
    beast::error_code ec;
    const size_t n = s.read_some(asio::buffer(buf), ec);
    if (ec) break;
    in.append(buf, n);
  }
  return in;
}

/// The payload of the first unmasked server text frame in `bytes` (after an HTTP head ending in
/// a blank line), or nullopt when it has not arrived whole.
std::optional<std::string> firstFrame(const std::string& bytes) {
  const size_t head = bytes.find("\r\n\r\n");
  if (head == std::string::npos) return std::nullopt;
  const std::string f = bytes.substr(head + 4);
  if (f.size() < 2) return std::nullopt;
  size_t len = static_cast<unsigned char>(f[1]) & 0x7f;
  size_t at = 2;
  if (len == 126) {
    if (f.size() < 4) return std::nullopt;
    len = (static_cast<size_t>(static_cast<unsigned char>(f[2])) << 8) |
          static_cast<unsigned char>(f[3]);
    at = 4;
  }
  if (f.size() < at + len) return std::nullopt;
  return f.substr(at, len);
}

}  // namespace

TEST_CASE("WebSocket: the upgrade needs a valid Defender credential, checked once") {
  RunningConsole c(wsConfig());
  asio::io_context ioc;
  {
    Plain none(ioc, c.app.defenderPort());
    CHECK(!none.upgrade(""));
    CHECK(none.refusal.result_int() == 401);
    CHECK(codeOf(none.refusal.body()) == "defender_credential_required");
    CHECK(none.refusal[beast::http::field::www_authenticate].starts_with("Bearer"));
  }
  {
    Plain wrong(ioc, c.app.defenderPort());
    CHECK(!wrong.upgrade("dcd1_not-a-credential"));
    CHECK(wrong.refusal.result_int() == 401);
    CHECK(codeOf(wrong.refusal.body()) == "invalid_credential");
  }
  auto revoked = c.app.auth().issueCredential("", "revoked");
  REQUIRE(revoked.ok());
  REQUIRE(c.app.auth().revokeCredential(revoked->record.id).ok());
  {
    Plain r(ioc, c.app.defenderPort());
    CHECK(!r.upgrade(revoked->secret));
    CHECK(r.refusal.result_int() == 401);
    CHECK(codeOf(r.refusal.body()) == "credential_revoked");
  }
  // Both paths upgrade.
  for (const char* path : {"/", "/api/v1/defender/ws"}) {
    Plain ok(ioc, c.app.defenderPort());
    CHECK(ok.upgrade(c.credential, path));
  }
  // The credential revoked while connected ends the connection at its next message.
  auto later = c.app.auth().issueCredential("", "revoked while connected");
  REQUIRE(later.ok());
  Plain live(ioc, c.app.defenderPort());
  REQUIRE(live.upgrade(later->secret));
  CHECK(live.call("heartbeat", heartbeatBody("task-revoked"))["status"] == 200);
  REQUIRE(c.app.auth().revokeCredential(later->record.id).ok());
  live.send(json{{"type", "heartbeat"}, {"body", heartbeatBody("task-revoked")}}.dump());
  CHECK(live.closed() == std::pair<int, std::string>{1008, "credential_revoked"});
}

TEST_CASE(
    "WebSocket: messages get the HTTP route's answers; hostname bound at the first heartbeat") {
  RunningConsole c(wsConfig());
  asio::io_context ioc;
  Plain d(ioc, c.app.defenderPort());
  REQUIRE(d.upgrade(c.credential));
  json r = d.call("heartbeat", heartbeatBody("task-1"), 7);
  CHECK(r["status"] == 200);
  CHECK(r["body"]["hostname"] == "task-1");
  CHECK(r["body"]["registered"] == true);
  CHECK(r["body"]["intervalSeconds"] == 30);
  CHECK(c.connectedCount() == 1);
  // A validation error is an answer on the open connection, nothing written.
  r = d.call("observations", json{{"hostname", "task-1"}, {"observations", "nope"}}, 8);
  CHECK(r["status"] == 400);
  CHECK(r["body"]["code"] == "invalid_field");
  r = d.call("observations",
             json{{"hostname", "task-1"},
                  {"observations", json::array({{{"kind", "process"},
                                                 {"time", "2027-01-15T08:00:00Z"},
                                                 {"fields", {{"path", "/bin/sh"}}}}})}},
             9);
  CHECK(r["status"] == 200);
  CHECK(r["body"]["accepted"] == 1);
  // Another hostname on this connection: 400 hostname_mismatch, nothing written.
  r = d.call("heartbeat", heartbeatBody("task-2"), 10);
  CHECK(r["status"] == 400);
  CHECK(r["body"]["code"] == "hostname_mismatch");
  CHECK(r["body"]["field"] == "hostname");
  CHECK(!c.known("task-2"));
  // The same hostname in another case is the same Defender.
  CHECK(d.call("heartbeat", heartbeatBody("TASK-1"), 11)["status"] == 200);
  // No id: the result has none.
  d.send(json{{"type", "heartbeat"}, {"body", heartbeatBody("task-1")}}.dump());
  r = d.next();
  CHECK(r["status"] == 200);
  CHECK(!r.contains("id"));
  r = d.call("disconnect", json{{"hostname", "task-1"}}, 12);
  CHECK(r["status"] == 200);
  CHECK(r["body"]["connected"] == false);
  CHECK(c.connectedCount() == 0);
  CHECK(c.metrics().find("dc_defender_ws_sessions 1") != std::string::npos);
}

TEST_CASE("WebSocket: the credential's App ID scope holds for every message of the connection") {
  RunningConsole c(wsConfig());
  const std::string appId = "shop:0f8fad5b-d9cb-469f-a165-70867728950e";
  auto scoped = c.app.auth().issueCredential(appId, "scoped");
  REQUIRE(scoped.ok());
  asio::io_context ioc;
  Plain d(ioc, c.app.defenderPort());
  REQUIRE(d.upgrade(scoped->secret));
  json r = d.call("heartbeat", json{{"hostname", "task-other"},
                                    {"type", "fargate"},
                                    {"appID", "other:0f8fad5b-d9cb-469f-a165-70867728950f"}});
  CHECK(r["status"] == 403);
  CHECK(r["body"]["code"] == "app_id_mismatch");
  CHECK(!c.known("task-other"));
  r = d.call("heartbeat", json{{"hostname", "task-own"}, {"type", "fargate"}, {"appID", appId}});
  CHECK(r["status"] == 200);
  CHECK(c.known("task-own"));
}

TEST_CASE("WebSocket: bad frames close the connection with a code and a reason; nothing written") {
  RunningConsole c(wsConfig());
  asio::io_context ioc;
  struct Case {
    const char* name;
    std::string frame;
    bool binary;
    int code;
    const char* reason;
  };
  const std::string big(70 * 1024, 'x');
  const std::vector<Case> cases = {
      {"oversize",
       json{{"type", "heartbeat"},
            {"body", {{"hostname", "bad-1"}, {"type", "docker"}, {"pad", big}}}}
           .dump(),
       false, 1009, "message_too_big"},
      {"not JSON", R"({"type":"heartbeat","body":{"hostname":"bad-2","type":"docker"})", false,
       1007, "invalid_json"},
      {"not an object", "[1,2]", false, 1007, "invalid_json"},
      {"binary", json{{"type", "heartbeat"}, {"body", heartbeatBody("bad-3")}}.dump(), true, 1003,
       "binary_not_supported"},
      {"unknown type", json{{"type", "register"}, {"body", heartbeatBody("bad-4")}}.dump(), false,
       1008, "unknown_type"},
      {"missing type", json{{"body", heartbeatBody("bad-5")}}.dump(), false, 1008, "missing_type"},
      // Over HTTP the same bodies are answered 400 invalid_json / too_deep (docs).
      {"a number beyond a double",
       R"({"type":"heartbeat","body":{"hostname":"bad-6","type":"docker","n":1e999}})", false, 1007,
       "invalid_json"},
      {"nested deeper than 64 levels",
       cat({R"({"type":"heartbeat","body":{"hostname":"bad-7","type":"docker","x":)",
            std::string(70, '['), std::string(70, ']'), "}}"}),
       false, 1007, "invalid_json"},
  };
  for (const auto& k : cases) {
    SECTION(k.name) {
      Plain d(ioc, c.app.defenderPort());
      REQUIRE(d.upgrade(c.credential));
      if (k.binary)
        d.sendBinary(k.frame);
      else
        d.send(k.frame);
      CHECK(d.closed() == std::pair<int, std::string>{k.code, k.reason});
      for (const char* h : {"bad-1", "bad-2", "bad-3", "bad-4", "bad-5", "bad-6", "bad-7"})
        CHECK(!c.known(h));
      CHECK(c.connectedCount() == 0);
    }
  }
}

TEST_CASE("WebSocket: pings keep an answering client; a silent one is closed after ~2 periods") {
  auto cfg = wsConfig();
  cfg.defenderWsPingSeconds = 1;
  RunningConsole c(cfg);
  asio::io_context ioc;
  {
    // The client keeps a read pending, so Beast answers the Console's pings; ~3.5 periods pass.
    Plain d(ioc, c.app.defenderPort());
    REQUIRE(d.upgrade(c.credential));
    int pings = 0;
    d.ws().control_callback([&pings](websocket::frame_type kind, beast::string_view) {
      if (kind == websocket::frame_type::ping) ++pings;
    });
    beast::flat_buffer b;
    std::optional<beast::error_code> done;
    d.ws().async_read(b, [&done](beast::error_code ec, size_t) { done = ec; });
    ioc.restart();
    ioc.run_for(std::chrono::milliseconds(3500));
    CHECK(!done);  // still open
    CHECK(pings >= 2);
    d.ws().async_write(
        asio::buffer(
            json{{"type", "heartbeat"}, {"id", 1}, {"body", heartbeatBody("pinged")}}.dump()),
        [](beast::error_code ec, size_t) { CHECK(!ec); });
    ioc.restart();
    while (!done && ioc.run_one_for(std::chrono::seconds(20)) > 0) {
    }
    REQUIRE(done);
    CHECK(!*done);
    CHECK(json::parse(beast::buffers_to_string(b.data()))["status"] == 200);
    ioc.restart();
  }
  {
    // A raw socket completes the upgrade and never answers a ping.
    tcp::socket s(ioc);
    s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"),
                            static_cast<uint16_t>(c.app.defenderPort())));
    boundReads(s);
    const std::string upgrade =
        "GET /api/v1/defender/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: "
        "Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: "
        "13\r\nAuthorization: Bearer ";
    const std::string request = cat({upgrade, c.credential, "\r\n\r\n"});
    asio::write(s, asio::buffer(request));
    const auto start = std::chrono::steady_clock::now();
    std::string in;
    char buf[4096];
    beast::error_code ec;
    for (;;) {
      const size_t n = s.read_some(asio::buffer(buf), ec);
      if (ec) break;
      in.append(buf, n);
    }
    const auto elapsed = std::chrono::steady_clock::now() - start;
    CHECK(in.starts_with("HTTP/1.1 101"));
    CHECK((ec == asio::error::eof || ec == asio::error::connection_reset));
    CHECK(elapsed >= std::chrono::milliseconds(900));
    CHECK(elapsed < std::chrono::seconds(15));
  }
}

TEST_CASE("WebSocket: a client that sends without reading stops being read and is closed") {
  auto cfg = wsConfig();
  cfg.defenderWsPingSeconds = 1;
  RunningConsole c(cfg);
  asio::io_context ioc;
  Plain d(ioc, c.app.defenderPort());
  REQUIRE(d.upgrade(c.credential));
  // Each message earns an answer that echoes its 60 KiB id; the client never reads one. Were
  // the Console to keep reading, it would accept all 64 MiB and hold the answers in memory.
  const std::string message = json{
      {"type", "heartbeat"},
      {"id", std::string(60 * 1024, 'x')},
      {"body", heartbeatBody(
                   "no-reader")}}.dump();
  const size_t limit = 64u << 20;
  size_t accepted = 0;
  std::optional<beast::error_code> failed;
  bool stalled = false;
  while (accepted < limit && !failed && !stalled) {
    std::optional<beast::error_code> done;
    d.ws().async_write(asio::buffer(message), [&done](beast::error_code ec, size_t) { done = ec; });
    ioc.restart();
    ioc.run_for(std::chrono::seconds(3));
    if (!done) {
      stalled = true;  // the Console stopped reading: this write waits in the socket buffers
      // The ping rule ends the connection; the waiting write then fails.
      ioc.restart();
      while (!done && ioc.run_one_for(std::chrono::seconds(30)) > 0) {
      }
      REQUIRE(done);
      failed = *done;
    } else if (*done) {
      failed = *done;
    } else {
      accepted += message.size();
    }
  }
  // Stopped being read, the connection falls silent for the ping rule and is closed, whether
  // or not this client's writes had stalled first.
  CHECK(accepted < limit);
  REQUIRE(failed);
  CHECK(*failed);  // closed by the Console
}

TEST_CASE("WebSocket: pushes — removed on delete, settings on a settings change") {
  RunningConsole c(wsConfig());
  asio::io_context ioc;
  Plain d(ioc, c.app.defenderPort());
  REQUIRE(d.upgrade(c.credential));
  Plain other(ioc, c.app.defenderPort());
  REQUIRE(other.upgrade(c.credential));
  REQUIRE(d.call("heartbeat", heartbeatBody("task-del"))["status"] == 200);
  REQUIRE(other.call("heartbeat", heartbeatBody("task-keep"))["status"] == 200);
  auto del = c.api().Delete("/api/v1/defenders/task-del");
  REQUIRE(del);
  REQUIRE(del->status == 200);
  json push = d.next();
  CHECK(push == json{{"type", "removed"}, {"hostname", "task-del"}, {"reason", "deleted"}});
  // It registers again with its next heartbeat, on the same connection.
  json r = d.call("heartbeat", heartbeatBody("task-del"), 2);
  CHECK(r["status"] == 200);
  CHECK(r["body"]["registered"] == true);

  auto set = c.api().Post("/api/v1/settings/defender", R"({"disconnectPeriodDays": 7})",
                          "application/json");
  REQUIRE(set);
  REQUIRE(set->status == 200);
  for (Plain* s : {&d, &other}) {
    json p = s->next();
    CHECK(p == json{{"type", "settings"}, {"intervalSeconds", 30}});
  }
  // The Defender that was not deleted got no `removed`: its next frame is its own result.
  CHECK(other.call("heartbeat", heartbeatBody("task-keep"), 3)["status"] == 200);
}

TEST_CASE("WebSocket: a dropped socket counts against no Defender; stop closes with 1001") {
  auto cfg = wsConfig();
  RunningConsole c(cfg);
  asio::io_context ioc;
  {
    Plain d(ioc, c.app.defenderPort());
    REQUIRE(d.upgrade(c.credential));
    REQUIRE(d.call("heartbeat", heartbeatBody("task-drop"))["status"] == 200);
    beast::get_lowest_layer(d.ws()).close();  // no disconnect, no close frame
  }
  CHECK(c.connectedCount() == 1);
  // Judged like a silent Defender: connected until its last heartbeat + grace (3 × 30 s).
  c.clock.advance(Seconds(80));
  CHECK(c.connectedCount() == 1);
  c.clock.advance(Seconds(20));
  CHECK(c.connectedCount() == 0);

  Plain live(ioc, c.app.defenderPort());
  REQUIRE(live.upgrade(c.credential));
  REQUIRE(live.call("heartbeat", heartbeatBody("task-live"))["status"] == 200);
  auto stopped = std::async(std::launch::async, [&c] { c.app.stop(); });
  CHECK(live.closed() == std::pair<int, std::string>{1001, "going_away"});
  stopped.get();
}

TEST_CASE("WebSocket over TLS, and the cpp-httplib front refuses the upgrade") {
  const auto dir =
      std::filesystem::temp_directory_path() / cat({"dc-ws-test-", std::to_string(::getpid())});
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  {
    auto cfg = wsConfig();
    cfg.plainHttp = false;
    cfg.database = (dir / "console.db").string();
    cfg.dataDir = dir.string();
    RunningConsole c(cfg);
    ssl::context tls(ssl::context::tls_client);
    tls.set_verify_mode(ssl::verify_none);  // the generated self-signed certificate, like curl -k
    asio::io_context ioc;
    Tls d(ioc, c.app.defenderPort(), &tls);
    REQUIRE(d.upgrade(c.credential));
    json r = d.call("heartbeat", heartbeatBody("task-tls"));
    CHECK(r["status"] == 200);
    CHECK(r["body"]["intervalSeconds"] == 30);
    Tls refused(ioc, c.app.defenderPort(), &tls);
    CHECK(!refused.upgrade("dcd1_wrong"));
    CHECK(refused.refusal.result_int() == 401);
  }
  std::filesystem::remove_all(dir);
  {
    auto cfg = wsConfig();
    cfg.defenderFront = "httplib";
    RunningConsole c(cfg);
    asio::io_context ioc;
    Plain d(ioc, c.app.defenderPort());
    CHECK(!d.upgrade(c.credential));
    CHECK(d.refusal.result_int() == 400);
    CHECK(codeOf(d.refusal.body()) == "websocket_unsupported");
  }
}

TEST_CASE("WebSocket: 300 Defenders, each on its own WebSocket, all answered") {
  constexpr int kFleet = 300;
  RunningConsole c(wsConfig());
  asio::io_context ioc;
  std::vector<std::unique_ptr<Plain>> fleet;
  for (int i = 0; i < kFleet; ++i) {
    fleet.push_back(std::make_unique<Plain>(ioc, c.app.defenderPort()));
    REQUIRE(fleet.back()->upgrade(c.credential));
  }
  // Every Defender sends before any answer is read.
  for (int i = 0; i < kFleet; ++i)
    fleet[i]->send(json{
        {"type", "heartbeat"}, {"id", i}, {"body", heartbeatBody(cat({"ws-", std::to_string(i)}))}}
                       .dump());
  int answered = 0;
  for (int i = 0; i < kFleet; ++i) {
    json r = fleet[i]->next();
    if (r.value("status", 0) == 200 && r.value("id", -1) == i) ++answered;
  }
  CHECK(answered == kFleet);
  CHECK(c.connectedCount() == kFleet);
  CHECK(c.metrics().find("dc_defender_ws_sessions 300") != std::string::npos);
}

TEST_CASE("WebSocket: Sec-WebSocket-Key must be the base64 of 16 bytes (RFC 6455 §4.2.1)") {
  RunningConsole c(wsConfig());
  asio::io_context ioc;
  auto answer = [&](const std::string& key) {
    tcp::socket s(ioc);
    s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"),
                            static_cast<uint16_t>(c.app.defenderPort())));
    boundReads(s);
    asio::write(s, asio::buffer(upgradeRequest(key, c.credential)));
    return readUntil(s, [](const std::string& in) {
      return in.find("\r\n\r\n") != std::string::npos && !in.starts_with("HTTP/1.1 400");
    });
  };
  // The RFC's own example key is accepted.
  CHECK(answer("dGhlIHNhbXBsZSBub25jZQ==").starts_with("HTTP/1.1 101"));
  for (const char* key : {
           "AAAAAAAAAAAAAAAAAAAAAAAA",  // 24 characters, but 18 bytes
           "!!!!!!!!!!!!!!!!!!!!!!==",  // not base64
           "dGhlIHNhbXBsZSBub25jZR==",  // bits beyond the 16 bytes set: not the encoding of any
           "dGhlIHNhbXBsZSBub25j",      // 15 bytes
           "",
       }) {
    INFO("key '" << key << "'");
    const std::string a = answer(key);
    CHECK(a.starts_with("HTTP/1.1 400"));
    const size_t body = a.find("\r\n\r\n");
    REQUIRE(body != std::string::npos);
    const json j = json::parse(a.substr(body + 4), nullptr, false);
    CHECK(j.value("code", "") == "invalid_websocket_key");
    CHECK(j.value("field", "") == "Sec-WebSocket-Key");
  }
}

TEST_CASE("WebSocket: a frame sent in the same packet as the upgrade request is answered") {
  RunningConsole c(wsConfig());
  asio::io_context ioc;
  tcp::socket s(ioc);
  s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"),
                          static_cast<uint16_t>(c.app.defenderPort())));
  boundReads(s);
  const std::string frame = maskedTextFrame(
      json{{"type", "heartbeat"}, {"id", 5}, {"body", heartbeatBody("same-packet")}}.dump());
  asio::write(s, asio::buffer(cat({upgradeRequest("dGhlIHNhbXBsZSBub25jZQ==", c.credential),
                                   frame})));  // one write: one segment on loopback
  const std::string in =
      readUntil(s, [](const std::string& bytes) { return firstFrame(bytes).has_value(); });
  REQUIRE(in.starts_with("HTTP/1.1 101"));
  const auto payload = firstFrame(in);
  REQUIRE(payload);
  const json r = json::parse(*payload);
  CHECK(r["id"] == 5);
  CHECK(r["status"] == 200);
  CHECK(c.known("same-packet"));
}

namespace {

/// Sends two text frames in one write on the client's socket.
void sendTogether(Plain& client, const std::string& first, const std::string& second) {
  asio::write(beast::get_lowest_layer(client.ws()),
              asio::buffer(cat({maskedTextFrame(first), maskedTextFrame(second)})));
}

/// The listener alone with the WebSocket transport: every message is recorded; one whose body
/// names the hostname "held" is held until released. The drain bound runs on `clock`.
struct HeldWsListener {
  ManualClock clock{kT0};
  std::mutex mu;
  std::vector<std::string> recorded;  // hostnames of the messages handled
  std::promise<void> entered;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::optional<channel::AsioListener> listener;
  int port = 0;

  explicit HeldWsListener(channel::AsioListenerOptions o = {}) {
    o.host = "127.0.0.1";
    o.ioThreads = 2;
    o.workers = 2;
    o.drainSeconds = 3;
    o.clock = &clock;
    o.webSocket.authorize = [](const channel::Request&) {
      return channel::WsUpgrade{std::make_shared<int>(1), std::nullopt};
    };
    o.webSocket.handle = [this](const channel::WsBinding&, const std::string&,
                                const channel::WsMessage& m) {
      const std::string host = json::parse(m.body).value("hostname", "");
      if (host == "held") {
        entered.set_value();
        released.wait();
      }
      {
        std::lock_guard lock(mu);
        recorded.push_back(host);
      }
      channel::WsAnswer a;
      a.result = channel::jsonResponse(json{{"hostname", host}}.dump());
      return a;
    };
    listener.emplace(o, [](const channel::Request&) { return channel::jsonResponse("{}"); });
    auto p = listener->start();
    REQUIRE(p.ok());
    port = *p;
  }
  bool handled(const std::string& host) {
    std::lock_guard lock(mu);
    return std::find(recorded.begin(), recorded.end(), host) != recorded.end();
  }
};

}  // namespace

TEST_CASE("WebSocket: stop answers the messages already received, then closes with 1001") {
  HeldWsListener h;
  asio::io_context ioc;
  Plain idle(ioc, h.port), busy(ioc, h.port);
  REQUIRE(idle.upgrade("any"));
  REQUIRE(busy.upgrade("any"));
  // One message in flight and one waiting behind it when the stop begins: both frames in one
  // write, so that the second has arrived before the stop (two writes could be held apart by
  // Nagle's algorithm until the first is acknowledged).
  sendTogether(busy,
               json{{"type", "heartbeat"}, {"id", 1}, {"body", {{"hostname", "held"}}}}.dump(),
               json{{"type", "heartbeat"}, {"id", 2}, {"body", {{"hostname", "behind"}}}}.dump());
  h.entered.get_future().wait();
  auto stopped = std::async(std::launch::async, [&h] { h.listener->stop(); });
  // The stop has begun: a connection with nothing in flight is closed at once.
  CHECK(idle.closed() == std::pair<int, std::string>{1001, "going_away"});
  h.release.set_value();
  json r = busy.next();
  CHECK(r["id"] == 1);
  CHECK(r["status"] == 200);
  r = busy.next();
  CHECK(r["id"] == 2);
  CHECK(r["status"] == 200);
  CHECK(busy.closed() == std::pair<int, std::string>{1001, "going_away"});
  REQUIRE(stopped.wait_for(std::chrono::seconds(20)) == std::future_status::ready);
  CHECK(h.handled("held"));
  CHECK(h.handled("behind"));
}

TEST_CASE("WebSocket: a stop does not wait for a client that never answers the close") {
  channel::AsioListenerOptions o;
  o.headerTimeoutSeconds = 600;  // Beast's own close-handshake timeout cannot end it first
  HeldWsListener h(o);
  asio::io_context ioc;
  tcp::socket s(ioc);
  s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<uint16_t>(h.port)));
  boundReads(s);
  asio::write(s, asio::buffer(upgradeRequest("dGhlIHNhbXBsZSBub25jZQ==", "any")));
  const std::string head =
      readUntil(s, [](const std::string& in) { return in.find("\r\n\r\n") != std::string::npos; });
  REQUIRE(head.starts_with("HTTP/1.1 101"));
  auto stopped = std::async(std::launch::async, [&h] { h.listener->stop(); });
  // The Console's close frame (opcode 8) arrives; this client never answers it.
  const std::string close = readUntil(s, [](const std::string& in) { return !in.empty(); });
  REQUIRE(!close.empty());
  CHECK(static_cast<unsigned char>(close[0]) == 0x88);
  // Its answers are written and its close is sent: the stop ends without the listener's clock
  // moving towards the drain bound (it used to wait for the close reply until the bound).
  const bool endedAlone = stopped.wait_for(std::chrono::seconds(10)) == std::future_status::ready;
  CHECK(endedAlone);
  if (!endedAlone) h.clock.advance(Seconds(3));  // the drain bound, so that the test ends
  stopped.wait();
}

TEST_CASE("WebSocket and HTTP: messages in flight at stop are answered and recorded") {
  const auto dir = std::filesystem::temp_directory_path() /
                   cat({"dc-ws-drain-test-", std::to_string(::getpid())});
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  auto cfg = wsConfig();
  cfg.database = (dir / "console.db").string();
  cfg.dataDir = dir.string();
  {
    RunningConsole c(cfg);
    REQUIRE(c.connectedCount() == 0);
    asio::io_context ioc;
    Plain ws(ioc, c.app.defenderPort());
    REQUIRE(ws.upgrade(c.credential));
    tcp::socket http(ioc);
    http.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"),
                               static_cast<uint16_t>(c.app.defenderPort())));
    boundReads(http);
    // Another writer holds the database: a registration waits in its handler for its commit.
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(cfg.database.c_str(), &db) == SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    REQUIRE(sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK);
    // A registration, and behind it on the same connection a refresh of the same Defender
    // (write-behind), in one write.
    sendTogether(
        ws, json{{"type", "heartbeat"}, {"id", 1}, {"body", heartbeatBody("drain-ws")}}.dump(),
        json{{"type", "heartbeat"}, {"id", 2}, {"body", heartbeatBody("drain-ws")}}.dump());
    const std::string body = heartbeatBody("drain-http").dump();
    asio::write(http, asio::buffer(cat({"POST /api/v1/defender/heartbeat HTTP/1.1\r\nHost: x\r\n"
                                        "Authorization: Bearer ",
                                        c.credential, "\r\nContent-Length: ",
                                        std::to_string(body.size()), "\r\n\r\n", body})));
    // Both registrations are in their handlers.
    bool inFlight = false;
    for (int i = 0; i < 2000 && !inFlight; ++i)
      inFlight = c.metrics().find("dc_defender_channel_busy 2\n") != std::string::npos;
    REQUIRE(inFlight);
    c.clock.advance(Seconds(10));  // the refresh behind is handled at T0 + 10 s
    auto stopped = std::async(std::launch::async, [&c] { c.app.stop(); });
    // The defender channel stopped accepting: the stop has begun.
    bool closedListener = false;
    for (int i = 0; i < 100000 && !closedListener; ++i) {
      tcp::socket probe(ioc);
      beast::error_code ec;
      probe.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"),
                                  static_cast<uint16_t>(c.app.defenderPort())),
                    ec);
      closedListener = ec == asio::error::connection_refused;
    }
    REQUIRE(closedListener);
    REQUIRE(sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr) == SQLITE_OK);
    sqlite3_close(db);
    json r = ws.next();
    CHECK(r["id"] == 1);
    CHECK(r["status"] == 200);
    CHECK(r["body"]["registered"] == true);
    r = ws.next();
    CHECK(r["id"] == 2);
    CHECK(r["status"] == 200);
    CHECK(r["body"]["registered"] == false);
    CHECK(ws.closed() == std::pair<int, std::string>{1001, "going_away"});
    const std::string answer = readUntil(http, [](const std::string&) { return false; });
    CHECK(answer.starts_with("HTTP/1.1 200"));
    CHECK(answer.find("Connection: close") != std::string::npos);
    CHECK(answer.find("\"drain-http\"") != std::string::npos);
    REQUIRE(stopped.wait_for(std::chrono::seconds(30)) == std::future_status::ready);
  }
  {
    // Recorded: both registrations, and the refresh answered during the stop was flushed.
    RunningConsole c(cfg);
    auto ws = c.app.inventory().find("drain-ws");
    REQUIRE(ws.ok());
    REQUIRE(ws->has_value());
    CHECK((*ws)->lastSeen == kT0 + Seconds(10));
    CHECK(c.known("drain-http"));
  }
  std::filesystem::remove_all(dir);
}
