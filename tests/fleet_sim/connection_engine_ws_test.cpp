// The per-Defender engine's WebSocket client against a scripted in-test server that speaks
// docs/defender-channel.md ("WebSocket transport"): the upgrade carries the credential,
// heartbeats are `{"type":"heartbeat","id":N,"body":{…}}` answered by `result`, pushes
// (`backoff`, `removed`) are honoured, pings are answered, a 1001 close leads to a reconnect, a
// refused upgrade's Retry-After is honoured and the run ends with a 1000 close. Real sockets,
// port 0; the server blocks on bounded socket reads, never sleeps.
#include <catch2/catch.hpp>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "tools/fleet_sim/connection_engine.h"

using namespace dc;
using namespace dc::sim;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using asio::ip::tcp;
using nlohmann::json;
using SteadyTime = std::chrono::steady_clock::time_point;

namespace {

constexpr const char* kCredential = "dcd1_test-credential";

struct Script {
  std::string authorization;  // of the first upgrade
  std::string path;           // of the first upgrade
  json firstHeartbeat;        // the first message
  double secondsAfterBackoff = 0;
  bool pongSeen = false;
  bool reRegisteredAnswered = false;
  double secondsAfterRefusal = 0;
  int finalCloseCode = 0;
  std::string failure;  // set when the client broke the protocol
};

json readMessage(websocket::stream<tcp::socket>& ws) {
  beast::flat_buffer b;
  ws.read(b);
  return json::parse(beast::buffers_to_string(b.data()));
}

void answer(websocket::stream<tcp::socket>& ws, const json& message, bool registered, double next) {
  ws.write(asio::buffer(json{{"type", "result"},
                             {"id", message["id"]},
                             {"status", 200},
                             {"body",
                              {{"hostname", message["body"]["hostname"]},
                               {"connected", true},
                               {"registered", registered},
                               {"intervalSeconds", 30},
                               {"nextHeartbeatSeconds", next}}}}
                            .dump()));
}

/// Accepts one upgrade on `acceptor`; returns the request.
http::request<http::string_body> accept(tcp::acceptor& acceptor,
                                        std::unique_ptr<websocket::stream<tcp::socket>>& ws) {
  tcp::socket s = acceptor.accept();
  beast::flat_buffer b;
  http::request<http::string_body> req;
  http::read(s, b, req);
  ws = std::make_unique<websocket::stream<tcp::socket>>(std::move(s));
  ws->accept(req);
  ws->text(true);
  return req;
}

/// Plays the script; sets `done` once the last heartbeat is answered, then waits for the close.
void serve(tcp::acceptor& acceptor, Script& out, std::atomic<bool>& done) {
  try {
    std::unique_ptr<websocket::stream<tcp::socket>> ws;
    auto req = accept(acceptor, ws);
    out.authorization = std::string(req[http::field::authorization]);
    out.path = std::string(req.target());
    json m = readMessage(*ws);
    out.firstHeartbeat = m;
    answer(*ws, m, true, 0.2);  // without the backoff, the next heartbeat would come in 0.2 s
    ws->write(asio::buffer(json{{"type", "backoff"}, {"seconds", 0.8}}.dump()));
    ws->write(asio::buffer(json{
        {"type", "removed"},
        {"hostname", m["body"]["hostname"]},
        {"reason", "deleted"}}.dump()));
    const SteadyTime pushed = std::chrono::steady_clock::now();
    ws->control_callback([&out](websocket::frame_type kind, beast::string_view) {
      if (kind == websocket::frame_type::pong) out.pongSeen = true;
    });
    ws->ping({});
    m = readMessage(*ws);
    out.secondsAfterBackoff =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - pushed).count();
    answer(*ws, m, true, 30);  // registered anew after `removed`
    out.reRegisteredAnswered = true;
    ws->close(websocket::close_reason(websocket::close_code::going_away, "going_away"));
    // Drain until the close handshake completes.
    try {
      for (;;) readMessage(*ws);
    } catch (const boost::system::system_error&) {
    }
    ws.reset();

    // The reconnect: refused with 503 and Retry-After 0.5.
    {
      tcp::socket s = acceptor.accept();
      beast::flat_buffer b;
      http::request<http::string_body> refusedReq;
      http::read(s, b, refusedReq);
      http::response<http::string_body> res{http::status::service_unavailable, 11};
      res.set(http::field::retry_after, "0.5");
      res.set(http::field::content_type, "application/json");
      res.body() = R"({"code":"overloaded","message":"busy","err":"busy"})";
      res.prepare_payload();
      res.keep_alive(false);
      http::write(s, res);
    }
    const SteadyTime refused = std::chrono::steady_clock::now();
    accept(acceptor, ws);
    out.secondsAfterRefusal =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - refused).count();
    m = readMessage(*ws);
    answer(*ws, m, false, 30);
    done = true;
    // Until the engine stops: it closes with 1000.
    try {
      for (;;) readMessage(*ws);
    } catch (const boost::system::system_error&) {
      out.finalCloseCode = ws->reason().code;
    }
  } catch (const std::exception& e) {
    out.failure = e.what();
  }
  done = true;
}

}  // namespace

TEST_CASE("per-Defender engine: WebSocket client follows docs/defender-channel.md") {
  asio::io_context io;
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  const int port = acceptor.local_endpoint().port();
  Script script;
  std::atomic<bool> done{false};
  std::thread server([&] { serve(acceptor, script, done); });

  ConnectionEngineConfig c;
  c.consoleUrl = "http://127.0.0.1:" + std::to_string(port);
  c.credential = kCredential;
  c.transport = WireTransport::kWebSocket;
  c.defenders = 1;
  c.rampPerSecond = 0;
  c.rampSeconds = 0;
  c.threads = 1;
  c.durationSeconds = 120;  // a cap: the script's end stops the run
  c.reconnect.minDelay = Millis(100);
  c.seed = 5;
  SystemClock clock;
  auto engine = ConnectionEngine::create(c, clock);
  REQUIRE(engine.ok());
  (*engine)->run(done, [](const std::string&) {});
  server.join();

  INFO(script.failure);
  REQUIRE(script.failure.empty());
  CHECK(script.authorization == std::string("Bearer ") + kCredential);
  CHECK(script.path == "/api/v1/defender/ws");
  CHECK(script.firstHeartbeat["type"] == "heartbeat");
  CHECK(script.firstHeartbeat["id"].is_number_unsigned());
  CHECK(script.firstHeartbeat["body"]["hostname"].is_string());
  CHECK(script.firstHeartbeat["body"]["type"] == "fargate");
  CHECK(script.secondsAfterBackoff >= 0.7);  // the push, not the answer's 0.2 s, decided
  CHECK(script.pongSeen);
  CHECK(script.reRegisteredAnswered);
  CHECK(script.secondsAfterRefusal >= 0.45);  // Retry-After 0.5 honoured
  CHECK(script.finalCloseCode == websocket::close_code::normal);

  const ConnectionSnapshot conn = (*engine)->connections();
  const StatsSnapshot s = (*engine)->stats();
  CHECK(conn.pushBackoff == 1);
  CHECK(conn.pushRemoved == 1);
  CHECK(conn.reRegistrations == 1);
  CHECK(conn.connects == 2);
  CHECK(conn.reconnects == 1);
  CHECK(conn.connectFailures == 1);
  REQUIRE(conn.upgradeRefusals.size() == 1);
  CHECK(conn.upgradeRefusals[0] == std::pair<int, uint64_t>{503, 1});
  REQUIRE(conn.closeCodes.size() == 1);
  CHECK(conn.closeCodes[0] == std::pair<int, uint64_t>{1001, 1});
  CHECK(s.heartbeatsOk == 3);
  CHECK(s.errors() == 0);
  CHECK(conn.recoveries == 1);
  CHECK(conn.down == 0);
  CHECK(conn.open == 0);
}
