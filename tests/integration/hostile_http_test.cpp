// Hostile input at the HTTP protocol level, on the real Console (port 0, manual clock): requests
// httplib's client will not send are written on raw sockets. Every refusal must be a 4xx with a
// JSON body {code, message}, and afterwards the Console must still answer and hold exactly the
// Defenders it held before.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <httplib.h>

#include <cstdlib>

#include <cerrno>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "auth/service.h"
#include "main/console_app.h"

using namespace dc;
using nlohmann::json;

namespace {

const TimePoint kT0 = TimePoint(Millis(1'800'000'000'000));

struct RawResponse {
  int status = 0;
  std::string head;
  std::string body;
};

/// Sends `request` on a fresh connection and reads one response (status line, headers and a
/// Content-Length body). Sending stops early when the server answers before reading everything.
/// Socket timeouts (5 s) keep a misbehaving server from hanging the test.
std::optional<RawResponse> sendRaw(int port, const std::string& request) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);

  size_t sent = 0;
  while (sent < request.size()) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 0) > 0) break;  // an answer (or a close) arrived: stop sending
    const size_t n = std::min<size_t>(64 * 1024, request.size() - sent);
    const ssize_t w = ::send(fd, request.data() + sent, n, MSG_NOSIGNAL);
    if (w <= 0) break;
    sent += static_cast<size_t>(w);
  }

  std::string in;
  std::optional<RawResponse> out;
  char buf[8192];
  for (;;) {
    const auto headEnd = in.find("\r\n\r\n");
    if (headEnd != std::string::npos) {
      RawResponse r;
      r.head = in.substr(0, headEnd);
      r.status = std::stoi(r.head.substr(9, 3));
      size_t length = 0;
      httplib::Headers headers;
      const auto pos = r.head.find("Content-Length: ");
      if (pos != std::string::npos) length = std::stoul(r.head.substr(pos + 16));
      if (in.size() >= headEnd + 4 + length) {
        r.body = in.substr(headEnd + 4, length);
        out = r;
        break;
      }
    }
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    in.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

struct RunningConsole {
  ManualClock clock{kT0};
  ConsoleApp app;

  static ConsoleConfig config() {
    ConsoleConfig c;
    c.database = ":memory:";
    c.host = "127.0.0.1";
    c.consolePort = 0;
    c.defenderPort = 0;
    c.uiDir = "/nonexistent";
    c.flushInterval = Millis(50);
    c.defenderMaxBodyBytes = 64 * 1024;
    c.plainHttp = true;
    // The same suite against either defender-channel front (tests/CMakeLists.txt runs both).
    if (const char* front = std::getenv("DC_TEST_DEFENDER_FRONT")) c.defenderFront = front;
    if (const char* front = std::getenv("DC_TEST_CONSOLE_FRONT")) c.consoleFront = front;
    c.adminPassword = "hostile-admin-password";
    c.passwordIterations = 1000;
    return c;
  }

  RunningConsole() : app(config(), clock, "test") {
    const Status st = app.start(/*startScheduler=*/false);
    if (!st.ok()) FAIL("Console did not start: " << st.error().message);
    // Credentials, so that what is tested is the request's shape, not its authentication.
    httplib::Client api("127.0.0.1", app.consolePort());
    auto r =
        api.Post("/api/v1/authenticate",
                 R"({"username":"admin","password":"hostile-admin-password"})", "application/json");
    REQUIRE(r);
    REQUIRE(r->status == 200);
    adminToken = json::parse(r->body).at("token").get<std::string>();
    auto credential = app.auth().issueCredential("", "hostile_http_test");
    REQUIRE(credential.ok());
    defenderCredential = credential->secret;
  }

  std::string adminToken;
  std::string defenderCredential;
  /// "Host" plus an Authorization header line for a raw request to the Console API / channel.
  std::string apiHead() const { return "Host: x\r\nAuthorization: Bearer " + adminToken + "\r\n"; }
  std::string channelHead() const {
    return "Host: x\r\nAuthorization: Bearer " + defenderCredential + "\r\n";
  }

  long long inventoryCount() {
    httplib::Client c("127.0.0.1", app.consolePort());
    c.set_bearer_token_auth(adminToken.c_str());
    auto r = c.Get("/api/v1/defenders");
    REQUIRE(r);
    REQUIRE(r->status == 200);
    return std::stoll(r->get_header_value("Total-Count"));
  }
  bool channelHealthy() {
    httplib::Client c("127.0.0.1", app.defenderPort());
    auto r = c.Get("/healthz");
    return r && r->status == 200;
  }
};

std::string heartbeatBody(const std::string& host) {
  return json{{"hostname", host}, {"type", "docker"}}.dump();
}

/// The response is `status` with a JSON error body carrying `code` and a message.
void checkJsonError(const std::optional<RawResponse>& r, int status, const std::string& code,
                    const std::string& field = "") {
  REQUIRE(r);
  INFO(r->head << "\n\n" << r->body);
  CHECK(r->status == status);
  CHECK(r->head.find("Content-Type: application/json") != std::string::npos);
  const auto body = json::parse(r->body, nullptr, /*allow_exceptions=*/false);
  REQUIRE(body.is_object());
  CHECK(body.value("code", "") == code);
  CHECK(!body.value("message", "").empty());
  if (!field.empty()) CHECK(body.value("field", "") == field);
}

/// `body` in HTTP/1.1 chunked transfer encoding: 4 KiB chunks, then the terminating chunk.
std::string chunked(const std::string& body) {
  std::string out;
  for (size_t at = 0; at < body.size(); at += 4096) {
    const std::string piece = body.substr(at, 4096);
    char size[16];
    std::snprintf(size, sizeof size, "%zx", piece.size());
    out += std::string(size) + "\r\n" + piece + "\r\n";
  }
  return out + "0\r\n\r\n";
}

}  // namespace

TEST_CASE("HTTP: hostile requests get 4xx JSON errors and change nothing") {
  RunningConsole c;
  const int console = c.app.consolePort();
  const int channel = c.app.defenderPort();
  {
    httplib::Client ch("127.0.0.1", channel);
    ch.set_bearer_token_auth(c.defenderCredential.c_str());
    auto r = ch.Post("/api/v1/defender/heartbeat", heartbeatBody("node-1"), "application/json");
    REQUIRE(r);
    REQUIRE(r->status == 200);
  }
  REQUIRE(c.inventoryCount() == 1);

  const std::string big(9000, 'a');
  const std::string oversizeJson =
      R"({"hostname":"node-2","type":"docker","version":")" + std::string(100 * 1024, 'v') + "\"}";

  SECTION("request line above 8192 bytes: 414 uri_too_long, on both listeners") {
    for (int port : {console, channel})
      checkJsonError(
          sendRaw(port, "GET /api/v1/defenders?search=" + big + " HTTP/1.1\r\nHost: x\r\n\r\n"),
          414, "uri_too_long");
  }
  SECTION("a header line above 8192 bytes: 400 invalid_header") {
    for (int port : {console, channel})
      checkJsonError(
          sendRaw(port, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + big + "\r\n\r\n"), 400,
          "invalid_header");
  }
  SECTION("more than 100 headers: 431 too_many_headers") {
    std::string req = "GET /api/v1/defenders HTTP/1.1\r\nHost: x\r\n";
    for (int i = 0; i < 150; ++i) req += "X-H" + std::to_string(i) + ": v\r\n";
    for (int port : {console, channel})
      checkJsonError(sendRaw(port, req + "\r\n"), 431, "too_many_headers");
  }
  SECTION("more than 32 KiB of headers: 431 headers_too_large") {
    std::string req = "GET /api/v1/defenders HTTP/1.1\r\nHost: x\r\n";
    for (int i = 0; i < 10; ++i)
      req += "X-H" + std::to_string(i) + ": " + std::string(4000, 'h') + "\r\n";
    checkJsonError(sendRaw(console, req + "\r\n"), 431, "headers_too_large");
  }
  SECTION("a Content-Length body above the limit: 413 body_too_large") {
    checkJsonError(
        sendRaw(channel, "POST /api/v1/defender/heartbeat HTTP/1.1\r\n" + c.channelHead() +
                             "Content-Type: application/json\r\nContent-Length: " +
                             std::to_string(oversizeJson.size()) + "\r\n\r\n" + oversizeJson),
        413, "body_too_large");
  }
  SECTION("a chunked body above the limit: 413 body_too_large, never handled") {
    std::string req = "POST /api/v1/defender/heartbeat HTTP/1.1\r\n" + c.channelHead() +
                      "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    req += chunked(oversizeJson);
    checkJsonError(sendRaw(channel, req), 413, "body_too_large");
  }
  SECTION("a chunked body on an unknown POST path: bounded, 413 body_too_large") {
    std::string req =
        "POST /no/such/route HTTP/1.1\r\nHost: x\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    req += chunked(oversizeJson);
    checkJsonError(sendRaw(channel, req), 413, "body_too_large");
  }
  SECTION("a chunked body on any method but POST: 411 length_required, before authentication") {
    for (const std::string method : {"PUT", "DELETE", "GET"})
      for (int port : {console, channel})
        checkJsonError(sendRaw(port, method + " /api/v1/users/x HTTP/1.1\r\nHost: x\r\n"
                                              "Transfer-Encoding: chunked\r\n\r\n"
                                              "5\r\nhello\r\n0\r\n\r\n"),
                       411, "length_required");
  }
  SECTION("a chunked body within the limit is accepted") {
    const std::string body = heartbeatBody("node-2");
    char size[16];
    std::snprintf(size, sizeof size, "%zx", body.size());
    auto r = sendRaw(channel,
                     "POST /api/v1/defender/heartbeat HTTP/1.1\r\n" + c.channelHead() +
                         "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" +
                         std::string(size) + "\r\n" + body + "\r\n0\r\n\r\n");
    REQUIRE(r);
    INFO(r->body);
    CHECK(r->status == 200);
    CHECK(c.inventoryCount() == 2);
    return;  // the inventory changed on purpose
  }
  SECTION("malformed chunked framing: 400 invalid_body") {
    checkJsonError(
        sendRaw(channel, "POST /api/v1/defender/heartbeat HTTP/1.1\r\n" + c.channelHead() +
                             "Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"),
        400, "invalid_body");
  }
  SECTION("POST without Content-Length or chunked framing: 411 length_required") {
    checkJsonError(
        sendRaw(channel, "POST /api/v1/defender/heartbeat HTTP/1.1\r\n" + c.channelHead() +
                             "Content-Type: application/json\r\n\r\n" + heartbeatBody("node-3")),
        411, "length_required");
  }
  SECTION("malformed request lines: 400 bad_request") {
    for (const std::string& line : std::vector<std::string>{
             "GARBAGE\r\n\r\n", "BREW /pot HTTP/1.1\r\n\r\n", "GET /healthz HTTP/9.9\r\n\r\n",
             "GET /healthz\r\n\r\n", std::string("GET /\0x HTTP/1.1\r\n\r\n", 20)})
      for (int port : {console, channel}) checkJsonError(sendRaw(port, line), 400, "bad_request");
  }
  SECTION("non-UTF-8 and NUL in the query: 400 naming the parameter") {
    checkJsonError(sendRaw(console, "GET /api/v1/defenders?hostname=a%00b HTTP/1.1\r\n" +
                                        c.apiHead() + "\r\n"),
                   400, "invalid_parameter");
    checkJsonError(
        sendRaw(console, "GET /api/v1/defenders?search=%FF%FE HTTP/1.1\r\n" + c.apiHead() + "\r\n"),
        400, "invalid_parameter", "search");
    checkJsonError(sendRaw(console, "GET /api/v1/defenders?cluster=%ED%A0%80 HTTP/1.1\r\n" +
                                        c.apiHead() + "\r\n"),
                   400, "invalid_parameter", "cluster");
    checkJsonError(
        sendRaw(console, "GET /api/v1/defenders?limit=%FF HTTP/1.1\r\n" + c.apiHead() + "\r\n"),
        400, "invalid_parameter");
    checkJsonError(
        sendRaw(console, "GET /api/v1/defenders/%FF%00 HTTP/1.1\r\n" + c.apiHead() + "\r\n"), 404,
        "unknown_defender");
  }
  SECTION("an unknown route: 404 not_found") {
    checkJsonError(sendRaw(channel, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"), 404, "not_found");
  }

  CHECK(c.channelHealthy());
  CHECK(c.inventoryCount() == 1);
}
