// Boost.Asio/Beast implementation of the per-Defender engine (connection_engine.h).
#include "tools/fleet_sim/connection_engine.h"

#include <netinet/in.h>
#include <openssl/ssl.h>
#include <spdlog/spdlog.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>

#include <array>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>

#include "tools/fleet_sim/transport.h"

namespace dc::sim {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using asio::ip::tcp;
using boost::system::error_code;
using nlohmann::json;

namespace {

constexpr auto kToken = asio::use_awaitable;

auto withError(error_code& ec) {
  return asio::redirect_error(asio::use_awaitable, ec);
}

Millis secondsToMillis(double s) {
  return Millis(static_cast<Millis::rep>(s * 1000));
}

std::optional<uint32_t> parseIpv4(std::string_view s) {
  error_code ec;
  auto a = asio::ip::make_address_v4(std::string(s), ec);
  if (ec) return std::nullopt;
  return a.to_uint();
}

struct ParsedUrl {
  bool tls = false;
  std::string host;
  std::string port;
};

ParsedUrl parseUrl(std::string_view url) {
  ParsedUrl u;
  u.tls = url.starts_with("https://");
  url.remove_prefix(u.tls ? 8 : 7);
  if (url.ends_with('/')) url.remove_suffix(1);
  const auto colon = url.rfind(':');
  if (colon != std::string_view::npos && url.find(']') == std::string_view::npos) {
    u.host = std::string(url.substr(0, colon));
    u.port = std::string(url.substr(colon + 1));
  } else {
    u.host = std::string(url);
    u.port = u.tls ? "443" : "80";
  }
  return u;
}

/// Counters updated from every io thread.
struct Counters {
  std::atomic<int64_t> open{0};
  std::atomic<uint64_t> connects{0}, reconnects{0}, connectFailures{0}, drops{0}, timeouts{0},
      staleRetries{0}, pushSettings{0}, pushRemoved{0}, pushBackoff{0}, reRegistrations{0};
  std::atomic<int64_t> maxLatency{0};
  std::atomic<uint64_t> answeredDefenders{0};
  std::atomic<int64_t> down{0};            // Defenders between a lost connection and an answer
  std::atomic<uint64_t> recoveries{0};     // first answers after a lost connection
  std::atomic<int64_t> lastRecoveryAt{0};  // epoch ms of the latest such answer
  std::array<std::atomic<uint64_t>, 600> upgradeRefusals{};
  std::atomic<uint64_t> tcpFailures{0}, tlsFailures{0}, upgradeFailures{0};
  std::array<std::atomic<uint64_t>, 5000> closeCodes{};

  void latency(int64_t micros) {
    int64_t seen = maxLatency.load(std::memory_order_relaxed);
    while (micros > seen && !maxLatency.compare_exchange_weak(seen, micros)) {
    }
  }
};

template <size_t N>
std::vector<std::pair<int, uint64_t>> nonZero(const std::array<std::atomic<uint64_t>, N>& a) {
  std::vector<std::pair<int, uint64_t>> out;
  for (size_t i = 0; i < N; ++i) {
    if (auto v = a[i].load(std::memory_order_relaxed)) out.emplace_back(static_cast<int>(i), v);
  }
  return out;
}

}  // namespace

Status validateEngineConfig(const ConnectionEngineConfig& c) {
  if (Status s = validateConsoleUrl(c.consoleUrl); !s) return s;
  if (Status s = validateFleetSpec(c.fleet); !s) return s;
  auto bad = [](const char* field, const char* message) {
    return Error::invalid("invalid_option", field, message);
  };
  if (c.defenders < 1) return bad("defenders", "--defenders must be at least 1");
  if (c.shardCount < 1 || c.shardIndex < 0 || c.shardIndex >= c.shardCount)
    return bad("shard", "--shard must be i/n with 0 <= i < n");
  if (c.threads < 1 || c.threads > 256) return bad("threads", "--threads must be 1..256");
  if (c.rampPerSecond < 0) return bad("ramp-per-second", "--ramp-per-second must be >= 0");
  if (c.rampSeconds < 0) return bad("ramp-seconds", "--ramp-seconds must be >= 0");
  if (c.durationSeconds < 0) return bad("duration", "--duration must be >= 0");
  if (!(c.connectTimeoutSeconds > 0))
    return bad("connect-timeout", "--connect-timeout must be > 0");
  if (!(c.answerTimeoutSeconds > 0)) return bad("answer-timeout", "--answer-timeout must be > 0");
  if (c.clockSkewSeconds < 0) return bad("clock-skew", "--clock-skew must be >= 0");
  if (!(c.progressSeconds > 0)) return bad("progress-seconds", "--progress-seconds must be > 0");
  if (c.wsPath.empty() || c.wsPath.front() != '/')
    return bad("ws-path", "--ws-path must start with /");
  for (const auto& a : c.sourceAddresses) {
    if (!parseIpv4(a)) return bad("source-addresses", "--source-addresses must be IPv4 addresses");
  }
  return Status::success();
}

Result<std::vector<std::string>> parseSourceAddresses(std::string_view text) {
  auto bad = [](const std::string& message) {
    return Error::invalid("invalid_option", "source-addresses", message);
  };
  std::vector<std::string> out;
  while (!text.empty()) {
    const auto comma = text.find(',');
    std::string_view item = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (item.empty()) continue;
    const auto dash = item.find('-');
    const auto first = parseIpv4(item.substr(0, dash));
    const auto last = dash == std::string_view::npos ? first : parseIpv4(item.substr(dash + 1));
    if (!first || !last) return bad("--source-addresses: '" + std::string(item) + "' is not IPv4");
    if (*last < *first)
      return bad("--source-addresses: range '" + std::string(item) + "' is backwards");
    if (*last - *first >= 65536 || out.size() + (*last - *first) >= 65536)
      return bad("--source-addresses: more than 65,536 addresses");
    for (uint64_t a = *first; a <= *last; ++a)
      out.push_back(asio::ip::address_v4(static_cast<uint32_t>(a)).to_string());
  }
  return out;
}

Result<std::pair<int, int>> parseShard(std::string_view text) {
  const auto slash = text.find('/');
  int i = -1, n = 0;
  try {
    if (slash == std::string_view::npos) throw std::invalid_argument("no slash");
    size_t used = 0;
    const std::string a(text.substr(0, slash)), b(text.substr(slash + 1));
    i = std::stoi(a, &used);
    if (used != a.size()) throw std::invalid_argument("trailing");
    n = std::stoi(b, &used);
    if (used != b.size()) throw std::invalid_argument("trailing");
  } catch (const std::exception&) {
    i = -1;
  }
  if (i < 0 || n < 1 || i >= n)
    return Error::invalid("invalid_option", "shard", "--shard must be i/n with 0 <= i < n");
  return std::pair{i, n};
}

int shardSize(int defenders, int index, int count) {
  return defenders / count + (index < defenders % count ? 1 : 0);
}

// ---------------------------------------------------------------------------------------------

struct ConnectionEngine::Impl {
  struct Defender {
    Task task;
    DefenderMachine machine;
    Millis skew{0};
    uint32_t thread = 0;
    uint32_t source = 0;  // index into sources (when any)
    uint64_t nextId = 0;
    asio::steady_timer* wake = nullptr;  // the timer the Defender sleeps on now
    beast::tcp_stream* tcp = nullptr;    // its connection's socket, while it has one
    bool wsOpen = false;                 // a WebSocket is established (stop closes it gracefully)
    bool everConnected = false;
    bool everAnswered = false;
    bool down = false;  // its connection was lost and no answer came since
    bool alive = true;
  };

  struct Worker {
    asio::io_context io{1};
    Rng rng;
    std::vector<uint32_t> defenders;  // indices into Impl::defenders
    std::thread thread;
  };

  /// What a WebSocket's writer and reader share (both on the connection's thread).
  struct WsShared {
    explicit WsShared(const asio::any_io_executor& ex) : wake(ex) {}
    asio::steady_timer wake;
    std::optional<Response> answer;
    uint64_t awaiting = 0;
    bool closed = false;
    bool readerDone = false;
  };

  ConnectionEngineConfig config;
  const Clock* clock = nullptr;
  ParsedUrl url;
  std::string hostHeader;
  std::vector<asio::ip::address_v4> sources;
  std::optional<asio::ssl::context> ssl;
  Fleet fleet;
  Stats stats;
  Counters counters;
  std::vector<Defender> defenders;
  std::vector<std::unique_ptr<Worker>> workers;
  tcp::resolver::results_type endpoints;
  std::atomic<bool> stopping{false};

  Millis connectTimeout() const { return secondsToMillis(config.connectTimeoutSeconds); }
  Millis answerTimeout() const { return secondsToMillis(config.answerTimeoutSeconds); }
  Rng& rngOf(const Defender& d) { return workers[d.thread]->rng; }

  /// Sleeps on `timer` until `due` or until the timer is cancelled.
  asio::awaitable<void> sleepUntil(asio::steady_timer& timer, TimePoint due) {
    const auto left = due - clock->now();
    if (left <= Millis(0)) co_return;
    timer.expires_after(left);
    error_code ec;
    co_await timer.async_wait(withError(ec));
  }

  /// The Defender's connection was lost (noticed now): it is down until its next answer.
  void markDown(Defender& d) {
    if (d.down || !d.everAnswered) return;
    d.down = true;
    counters.down.fetch_add(1, std::memory_order_relaxed);
  }

  void opened(Defender& d) {
    counters.open.fetch_add(1, std::memory_order_relaxed);
    counters.connects.fetch_add(1, std::memory_order_relaxed);
    if (d.everConnected) counters.reconnects.fetch_add(1, std::memory_order_relaxed);
    d.everConnected = true;
    d.machine.onConnected(clock->now());
  }

  /// A connection attempt failed at `stage` ("tcp", "tls", "upgrade") with `ec`; the 1st, 10th,
  /// 100th, … failure of each stage is logged with its error.
  void connectFailed(Defender& d, const Response& refusal, const char* stage,
                     const error_code& ec) {
    std::atomic<uint64_t>& n = stage[0] == 't'
                                   ? (stage[1] == 'c' ? counters.tcpFailures : counters.tlsFailures)
                                   : counters.upgradeFailures;
    const uint64_t count = n.fetch_add(1, std::memory_order_relaxed) + 1;
    uint64_t power = 1;
    while (power < count) power *= 10;
    if (power == count)
      spdlog::warn("connect failure #{} at {}: {}{}", count, stage, ec.message(),
                   refusal.status ? fmt::format(" (HTTP {})", refusal.status) : std::string());
    counters.connectFailures.fetch_add(1, std::memory_order_relaxed);
    if (refusal.status > 0 && refusal.status < 600)
      counters.upgradeRefusals[static_cast<size_t>(refusal.status)].fetch_add(1);
    d.machine.onConnectFailed(clock->now(), refusal, rngOf(d));
  }

  /// Records an answered heartbeat and lets the machine schedule the next one.
  void answered(Defender& d, const Response& r, std::chrono::steady_clock::time_point sent) {
    const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(
                            std::chrono::steady_clock::now() - sent)
                            .count();
    stats.recordHeartbeat(r.status, micros);
    counters.latency(micros);
    const uint32_t before = d.machine.reRegistrations();
    const NextHeartbeat next = d.machine.onHeartbeatAnswer(r, clock->now(), rngOf(d));
    if (next.outcome == Outcome::kOk) {
      stats.addHeartbeatOk();
      if (next.registered) stats.addRegistered();
      if (!d.everAnswered) counters.answeredDefenders.fetch_add(1, std::memory_order_relaxed);
      d.everAnswered = true;
      if (d.down) {
        d.down = false;
        counters.down.fetch_sub(1, std::memory_order_relaxed);
        counters.recoveries.fetch_add(1, std::memory_order_relaxed);
        const int64_t at = clock->now().time_since_epoch().count();
        int64_t seen = counters.lastRecoveryAt.load();
        while (at > seen && !counters.lastRecoveryAt.compare_exchange_weak(seen, at)) {
        }
      }
    } else if (r.status == 200) {
      stats.addBadReply();
    }
    if (d.machine.reRegistrations() != before) counters.reRegistrations.fetch_add(1);
  }

  std::string heartbeatBodyOf(const Defender& d) {
    return heartbeatBody(fleet, d.task, clock->now() + d.skew);
  }

  /// Opens `tcp`, bound to the Defender's source address, and connects it.
  asio::awaitable<error_code> connectTcp(Defender& d, beast::tcp_stream& stream) {
    error_code ec;
    if (!sources.empty()) {
      auto& sock = stream.socket();
      sock.open(tcp::v4(), ec);
      if (ec) co_return ec;
#ifdef IP_BIND_ADDRESS_NO_PORT
      // Choose the port at connect time, per destination: the ~28,000 ephemeral ports are then
      // per (source, destination) pair instead of per source address.
      int one = 1;
      ::setsockopt(sock.native_handle(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
#endif
      sock.bind(tcp::endpoint(sources[d.source], 0), ec);
      if (ec) co_return ec;
    }
    stream.expires_after(connectTimeout());
    for (const auto& ep : endpoints) {
      if (!sources.empty() && !ep.endpoint().address().is_v4()) continue;
      co_await stream.async_connect(ep.endpoint(), withError(ec));
      if (!ec || stopping) break;
    }
    if (!ec) stream.socket().set_option(tcp::no_delay(true), ec);
    co_return ec;
  }

  /// One Defender, for its whole life: connect, talk, and reconnect when the connection drops.
  asio::awaitable<void> defenderLoop(Defender& d) {
    auto ex = co_await asio::this_coro::executor;
    asio::steady_timer timer(ex);
    d.wake = &timer;
    while (!stopping) {
      co_await sleepUntil(timer, d.machine.connectDue());
      if (stopping) break;
      if (clock->now() < d.machine.connectDue()) continue;  // woken early by a push
      co_await connection(d, timer);
    }
    d.wake = nullptr;
  }

  asio::awaitable<void> connection(Defender& d, asio::steady_timer& timer) {
    auto ex = co_await asio::this_coro::executor;
    beast::tcp_stream stream(ex);
    d.tcp = &stream;
    error_code ec = co_await connectTcp(d, stream);
    if (ec) {
      d.tcp = nullptr;
      if (!stopping) connectFailed(d, Response{}, "tcp", ec);
      co_return;
    }
    if (!url.tls) {
      if (config.transport == WireTransport::kWebSocket) {
        websocket::stream<beast::tcp_stream> ws(std::move(stream));
        co_await wsSession(d, ws);
      } else {
        co_await httpSession(d, stream, stream, timer);
      }
      d.tcp = nullptr;
      co_return;
    }
    beast::ssl_stream<beast::tcp_stream> tls(std::move(stream), *ssl);
    d.tcp = &beast::get_lowest_layer(tls);
    SSL_set_tlsext_host_name(tls.native_handle(), url.host.c_str());
    beast::get_lowest_layer(tls).expires_after(connectTimeout());
    co_await tls.async_handshake(asio::ssl::stream_base::client, withError(ec));
    if (ec) {
      d.tcp = nullptr;
      if (!stopping) connectFailed(d, Response{}, "tls", ec);
      co_return;
    }
    if (config.transport == WireTransport::kWebSocket) {
      websocket::stream<beast::ssl_stream<beast::tcp_stream>> ws(std::move(tls));
      co_await wsSession(d, ws);
    } else {
      co_await httpSession(d, tls, beast::get_lowest_layer(tls), timer);
    }
    d.tcp = nullptr;
  }

  /// HTTP/1.1 keep-alive: one POST at a time on the Defender's own connection.
  template <class Stream>
  asio::awaitable<void> httpSession(Defender& d, Stream& stream, beast::tcp_stream& lowest,
                                    asio::steady_timer& timer) {
    d.tcp = &lowest;
    opened(d);
    int answeredHere = 0;
    beast::flat_buffer buffer;
    while (!stopping) {
      if (clock->now() < d.machine.heartbeatDue()) {
        co_await sleepUntil(timer, d.machine.heartbeatDue());
        continue;
      }
      http::request<http::string_body> req{http::verb::post, std::string(kHeartbeatPath), 11};
      req.set(http::field::host, hostHeader);
      req.set(http::field::user_agent, "defender-fleet-sim");
      req.set(http::field::content_type, "application/json");
      if (!config.credential.empty())
        req.set(http::field::authorization, "Bearer " + config.credential);
      req.keep_alive(true);
      req.body() = heartbeatBodyOf(d);
      req.prepare_payload();
      const auto sent = std::chrono::steady_clock::now();
      lowest.expires_after(answerTimeout());
      error_code ec;
      co_await http::async_write(stream, req, withError(ec));
      http::response<http::string_body> res;
      if (!ec) co_await http::async_read(stream, buffer, res, withError(ec));
      if (ec) {
        if (stopping) break;
        markDown(d);
        const bool closedByPeer = ec == http::error::end_of_stream || ec == asio::error::eof ||
                                  ec == asio::error::connection_reset ||
                                  ec == asio::error::broken_pipe ||
                                  ec == asio::ssl::error::stream_truncated;
        if (answeredHere > 0 && closedByPeer) {
          counters.staleRetries.fetch_add(1, std::memory_order_relaxed);
          d.machine.onStaleConnection(clock->now());
        } else if (ec == beast::error::timeout) {
          counters.timeouts.fetch_add(1, std::memory_order_relaxed);
          counters.drops.fetch_add(1, std::memory_order_relaxed);
          stats.recordHeartbeat(0, std::chrono::duration_cast<std::chrono::microseconds>(
                                       std::chrono::steady_clock::now() - sent)
                                       .count());
          d.machine.onHeartbeatTimeout(clock->now(), rngOf(d));
        } else {
          counters.drops.fetch_add(1, std::memory_order_relaxed);
          stats.recordHeartbeat(0, 0);
          d.machine.onConnectionLost(clock->now(), rngOf(d));
        }
        break;
      }
      ++answeredHere;
      Response r;
      r.status = static_cast<int>(res.result_int());
      r.body = std::move(res.body());
      if (auto it = res.find(http::field::retry_after); it != res.end())
        r.retryAfterSeconds =
            parseRetryAfter(std::string_view(it->value().data(), it->value().size()));
      answered(d, r, sent);
      if (!res.keep_alive()) {
        d.machine.onClosedAfterAnswer();
        break;
      }
    }
    error_code ignored;
    lowest.socket().shutdown(tcp::socket::shutdown_both, ignored);
    lowest.close();
    counters.open.fetch_sub(1, std::memory_order_relaxed);
  }

  /// Reads answers and pushes until the WebSocket closes.
  template <class Ws>
  asio::awaitable<void> wsReader(Defender& d, Ws& ws, WsShared& sh) {
    beast::flat_buffer buffer;
    error_code ec;
    for (;;) {
      buffer.clear();
      co_await ws.async_read(buffer, withError(ec));
      if (ec) break;
      const json m = json::parse(beast::buffers_to_string(buffer.data()), nullptr, false);
      if (!m.is_object()) continue;
      const std::string type = m.value("type", "");
      if (type == "result") {
        const auto id = m.find("id");
        if (id != m.end() && id->is_number_unsigned() && id->get<uint64_t>() == sh.awaiting) {
          Response r;
          r.status = m.value("status", 0);
          if (auto b = m.find("body"); b != m.end()) r.body = b->dump();
          if (auto ra = m.find("retryAfterSeconds"); ra != m.end() && ra->is_number())
            r.retryAfterSeconds = ra->get<double>();
          sh.answer = std::move(r);
          sh.wake.cancel();
        }
      } else if (type == "settings") {
        counters.pushSettings.fetch_add(1, std::memory_order_relaxed);
        if (auto v = m.find("intervalSeconds"); v != m.end() && v->is_number())
          d.machine.onSettings(v->get<double>(), clock->now());
        sh.wake.cancel();
      } else if (type == "backoff") {
        counters.pushBackoff.fetch_add(1, std::memory_order_relaxed);
        if (auto v = m.find("seconds"); v != m.end() && v->is_number())
          d.machine.onBackoff(v->get<double>(), clock->now());
        sh.wake.cancel();
      } else if (type == "removed") {
        counters.pushRemoved.fetch_add(1, std::memory_order_relaxed);
        d.machine.onRemoved();
      }
    }
    if (ec == websocket::error::closed) {
      const auto code = static_cast<size_t>(ws.reason().code);
      if (code < counters.closeCodes.size()) counters.closeCodes[code].fetch_add(1);
    }
    sh.closed = true;
    sh.readerDone = true;
    sh.wake.cancel();
  }

  /// WebSocket: upgrade with the credential, then heartbeat messages; a reader handles the rest.
  template <class Ws>
  asio::awaitable<void> wsSession(Defender& d, Ws& ws) {
    auto ex = co_await asio::this_coro::executor;
    auto& lowest = beast::get_lowest_layer(ws);
    d.tcp = &lowest;
    const std::string credential = config.credential;
    ws.set_option(websocket::stream_base::decorator([credential](websocket::request_type& req) {
      req.set(http::field::user_agent, "defender-fleet-sim");
      if (!credential.empty()) req.set(http::field::authorization, "Bearer " + credential);
    }));
    websocket::response_type res;
    error_code ec;
    lowest.expires_after(connectTimeout());
    co_await ws.async_handshake(res, hostHeader, config.wsPath, withError(ec));
    if (ec) {
      if (stopping) co_return;
      Response refusal;
      if (ec == websocket::error::upgrade_declined) {
        refusal.status = static_cast<int>(res.result_int());
        if (auto it = res.find(http::field::retry_after); it != res.end())
          refusal.retryAfterSeconds =
              parseRetryAfter(std::string_view(it->value().data(), it->value().size()));
      }
      connectFailed(d, refusal, "upgrade", ec);
      co_return;
    }
    lowest.expires_never();
    websocket::stream_base::timeout t{};
    t.handshake_timeout = std::chrono::duration_cast<std::chrono::seconds>(connectTimeout());
    t.idle_timeout = websocket::stream_base::none();
    t.keep_alive_pings = false;
    ws.set_option(t);
    ws.text(true);
    opened(d);
    d.wsOpen = true;

    WsShared sh(ex);
    asio::steady_timer* outer = d.wake;
    d.wake = &sh.wake;
    asio::co_spawn(ex, wsReader(d, ws, sh), asio::detached);

    bool lost = false;
    while (!stopping && !sh.closed) {
      if (clock->now() < d.machine.heartbeatDue()) {
        co_await sleepUntil(sh.wake, d.machine.heartbeatDue());
        continue;
      }
      const uint64_t id = ++d.nextId;
      std::string message = R"({"type":"heartbeat","id":)";
      message += std::to_string(id);
      message += R"(,"body":)";
      message += heartbeatBodyOf(d);
      message += '}';
      sh.awaiting = id;
      sh.answer.reset();
      const auto sent = std::chrono::steady_clock::now();
      co_await ws.async_write(asio::buffer(message), withError(ec));
      if (ec) {
        if (!stopping) {
          stats.recordHeartbeat(0, 0);
          lost = true;
        }
        break;
      }
      sh.wake.expires_after(answerTimeout());
      bool expired = false;
      while (!sh.answer && !sh.closed && !stopping) {
        co_await sh.wake.async_wait(withError(ec));
        if (!ec) {
          expired = true;
          break;
        }
      }
      if (sh.answer) {
        answered(d, *sh.answer, sent);
        sh.answer.reset();
        continue;
      }
      if (stopping) break;
      lost = true;
      if (expired) {
        counters.timeouts.fetch_add(1, std::memory_order_relaxed);
        stats.recordHeartbeat(0, std::chrono::duration_cast<std::chrono::microseconds>(
                                     std::chrono::steady_clock::now() - sent)
                                     .count());
        d.machine.onHeartbeatTimeout(clock->now(), rngOf(d));
      } else {
        stats.recordHeartbeat(0, 0);
        d.machine.onConnectionLost(clock->now(), rngOf(d));
      }
      break;
    }
    if (!lost && sh.closed && !stopping) {
      lost = true;
      d.machine.onConnectionLost(clock->now(), rngOf(d));
    }
    if (lost) {
      counters.drops.fetch_add(1, std::memory_order_relaxed);
      markDown(d);
    }
    d.wsOpen = false;
    if (!sh.closed && stopping) {
      co_await ws.async_close(websocket::close_code::normal, withError(ec));
    }
    if (!sh.readerDone) {
      error_code ignored;
      lowest.socket().close(ignored);
    }
    while (!sh.readerDone) {
      sh.wake.expires_after(std::chrono::seconds(60));
      co_await sh.wake.async_wait(withError(ec));
    }
    d.wake = outer;
    error_code ignored;
    lowest.socket().close(ignored);
    counters.open.fetch_sub(1, std::memory_order_relaxed);
  }

  void startWorkers() {
    for (auto& w : workers) {
      Worker* worker = w.get();
      for (uint32_t i : worker->defenders)
        asio::co_spawn(worker->io, defenderLoop(defenders[i]), asio::detached);
      worker->thread = std::thread([worker] { worker->io.run(); });
    }
  }

  /// Stops every Defender: wakes its timer (a WebSocket then closes with 1000) and cancels a
  /// connection still being set up or an HTTP request in flight.
  void stopWorkers() {
    stopping = true;
    for (auto& w : workers) {
      Worker* worker = w.get();
      asio::post(worker->io, [this, worker] {
        for (uint32_t i : worker->defenders) {
          Defender& d = defenders[i];
          if (d.wake) d.wake->cancel();
          if (d.tcp && !d.wsOpen) d.tcp->cancel();
        }
      });
    }
    for (auto& w : workers) {
      if (w->thread.joinable()) w->thread.join();
    }
  }

  /// The hostnames of the Defenders that had an answer, read on their own threads.
  std::vector<std::string> answeredHostnames() {
    std::vector<std::string> out;
    for (auto& w : workers) {
      Worker* worker = w.get();
      std::promise<std::vector<std::string>> p;
      auto f = p.get_future();
      asio::post(worker->io, [this, worker, &p] {
        std::vector<std::string> names;
        for (uint32_t i : worker->defenders) {
          if (defenders[i].everAnswered && defenders[i].alive)
            names.push_back(defenders[i].task.taskId);
        }
        p.set_value(std::move(names));
      });
      auto names = f.get();
      out.insert(out.end(), names.begin(), names.end());
    }
    return out;
  }
};

Result<std::unique_ptr<ConnectionEngine>> ConnectionEngine::create(
    const ConnectionEngineConfig& config, const Clock& clock) {
  if (Status s = validateEngineConfig(config); !s) return s.error();
  auto impl = std::make_unique<Impl>();
  impl->config = config;
  impl->clock = &clock;
  impl->url = parseUrl(config.consoleUrl);
  impl->hostHeader = impl->url.host + ":" + impl->url.port;
  for (const auto& a : config.sourceAddresses)
    impl->sources.push_back(asio::ip::make_address_v4(a));
  if (impl->url.tls) {
    impl->ssl.emplace(asio::ssl::context::tls_client);
    // A TLS connection idle between heartbeats keeps no read/write buffers.
    SSL_CTX_set_mode(impl->ssl->native_handle(), SSL_MODE_RELEASE_BUFFERS);
    if (config.insecure) {
      impl->ssl->set_verify_mode(asio::ssl::verify_none);
    } else {
      error_code ec;
      if (!config.caCertFile.empty()) {
        impl->ssl->load_verify_file(config.caCertFile, ec);
      } else {
        impl->ssl->set_default_verify_paths(ec);
      }
      if (ec) return Error::invalid("invalid_option", "ca-cert", "--ca-cert: " + ec.message());
      impl->ssl->set_verify_mode(asio::ssl::verify_peer);
    }
  }
  {
    asio::io_context io;
    tcp::resolver resolver(io);
    error_code ec;
    impl->endpoints = resolver.resolve(impl->url.host, impl->url.port, ec);
    if (ec)
      return Error::invalid("invalid_option", "console",
                            "--console: cannot resolve '" + impl->url.host + "': " + ec.message());
  }
  const uint64_t shardSeed =
      config.seed + 0x9E3779B97F4A7C15ULL * static_cast<uint64_t>(config.shardIndex);
  Rng rng(shardSeed);
  auto fleet = makeFleet(config.fleet, rng);
  if (!fleet) return fleet.error();
  impl->fleet = std::move(*fleet);
  for (int t = 0; t < config.threads; ++t) {
    auto w = std::make_unique<Impl::Worker>();
    w->rng.seed(shardSeed + static_cast<uint64_t>(t) + 1);
    impl->workers.push_back(std::move(w));
  }
  const int n = shardSize(config.defenders, config.shardIndex, config.shardCount);
  impl->defenders.reserve(static_cast<size_t>(n));
  const TimePoint now = clock.now();
  // Connection k of this shard starts at k / (rate / shards): the shards together ramp at rate.
  const double perSecond = config.rampPerSecond > 0
                               ? config.rampPerSecond / config.shardCount
                               : (config.rampSeconds > 0 ? n / config.rampSeconds : 0);
  std::uniform_real_distribution<double> skew(-config.clockSkewSeconds, config.clockSkewSeconds);
  for (int k = 0; k < n; ++k) {
    Impl::Defender d{newTask(impl->fleet, pickFamily(impl->fleet, rng), now, rng),
                     DefenderMachine(config.schedule, config.reconnect)};
    d.skew = config.clockSkewSeconds > 0 ? secondsToMillis(skew(rng)) : Millis(0);
    d.thread = static_cast<uint32_t>(k % config.threads);
    const int global = k * config.shardCount + config.shardIndex;
    d.source = impl->sources.empty() ? 0 : static_cast<uint32_t>(global % impl->sources.size());
    d.machine.start(now + (perSecond > 0 ? secondsToMillis(k / perSecond) : Millis(0)));
    impl->workers[d.thread]->defenders.push_back(static_cast<uint32_t>(k));
    impl->defenders.push_back(std::move(d));
  }
  impl->stats.addAlive(n);
  std::unique_ptr<ConnectionEngine> engine(new ConnectionEngine());
  engine->impl_ = std::move(impl);
  return engine;
}

ConnectionEngine::~ConnectionEngine() {
  if (impl_) {
    for (auto& w : impl_->workers) {
      if (w->thread.joinable()) {
        impl_->stopping = true;
        w->io.stop();
        w->thread.join();
      }
    }
  }
}

void ConnectionEngine::run(const std::atomic<bool>& interrupt,
                           const std::function<void(const std::string&)>& report,
                           const std::function<void(std::vector<std::string>)>& beforeStop) {
  Impl& m = *impl_;
  const auto start = std::chrono::steady_clock::now();
  const auto progress = secondsToMillis(m.config.progressSeconds);
  const auto duration = secondsToMillis(m.config.durationSeconds);
  m.startWorkers();
  StatsSnapshot prev = m.stats.snapshot();
  auto lastReport = start;
  for (;;) {
    const auto now = std::chrono::steady_clock::now();
    const auto elapsed = std::chrono::duration_cast<Millis>(now - start);
    if (interrupt.load() || (m.config.durationSeconds > 0 && elapsed >= duration)) break;
    if (m.config.stopWhenAllAnswered && m.counters.answeredDefenders.load() == m.defenders.size())
      break;
    if (now - lastReport >= progress) {
      const StatsSnapshot snap = m.stats.snapshot();
      report(formatProgress(snap, prev, elapsed,
                            std::chrono::duration_cast<Millis>(now - lastReport)) +
             formatConnections(connections()));
      prev = snap;
      lastReport = now;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (beforeStop) beforeStop(m.answeredHostnames());
  m.stopWorkers();
}

StatsSnapshot ConnectionEngine::stats() const {
  return impl_->stats.snapshot();
}

ConnectionSnapshot ConnectionEngine::connections() const {
  const Counters& c = impl_->counters;
  ConnectionSnapshot s;
  s.open = c.open.load();
  s.connects = c.connects.load();
  s.reconnects = c.reconnects.load();
  s.connectFailures = c.connectFailures.load();
  s.drops = c.drops.load();
  s.timeouts = c.timeouts.load();
  s.staleRetries = c.staleRetries.load();
  s.pushSettings = c.pushSettings.load();
  s.pushRemoved = c.pushRemoved.load();
  s.pushBackoff = c.pushBackoff.load();
  s.reRegistrations = c.reRegistrations.load();
  s.maxLatencyMicros = c.maxLatency.load();
  s.down = c.down.load();
  s.recoveries = c.recoveries.load();
  s.lastRecoveryAtMs = c.lastRecoveryAt.load();
  s.upgradeRefusals = nonZero(c.upgradeRefusals);
  s.tcpFailures = c.tcpFailures.load();
  s.tlsFailures = c.tlsFailures.load();
  s.upgradeFailures = c.upgradeFailures.load();
  s.closeCodes = nonZero(c.closeCodes);
  return s;
}

size_t ConnectionEngine::size() const {
  return impl_->defenders.size();
}

size_t ConnectionEngine::answeredDefenders() const {
  return impl_->counters.answeredDefenders.load();
}

std::string formatConnections(const ConnectionSnapshot& c) {
  std::string s = " open=" + std::to_string(c.open);
  s += " connects=" + std::to_string(c.connects);
  s += " reconnects=" + std::to_string(c.reconnects);
  s += " connect-failures=" + std::to_string(c.connectFailures);
  s += " drops=" + std::to_string(c.drops);
  s += " timeouts=" + std::to_string(c.timeouts);
  if (c.pushBackoff) s += " backoffs=" + std::to_string(c.pushBackoff);
  if (c.pushRemoved) s += " removed=" + std::to_string(c.pushRemoved);
  if (c.recoveries || c.down) {
    s += " down=" + std::to_string(c.down);
    s += " recovered=" + std::to_string(c.recoveries);
  }
  return s;
}

std::string summaryJson(const StatsSnapshot& stats, const ConnectionSnapshot& c, size_t defenders,
                        size_t answeredDefenders, Millis elapsed,
                        const std::optional<FalseDisconnectCheck>& check) {
  json errors = json::object();
  for (size_t i = 0; i < stats.byStatus.size(); ++i) {
    if (stats.byStatus[i])
      errors[i == 0 ? std::string("net") : std::to_string(i)] = stats.byStatus[i];
  }
  // A bucket's upper bound may exceed the exact maximum: never report a percentile above it.
  const double maxMs = static_cast<double>(c.maxLatencyMicros) / 1000.0;
  auto clamp = [maxMs](double ms) { return maxMs > 0 ? std::min(ms, maxMs) : ms; };
  auto pairs = [](const std::vector<std::pair<int, uint64_t>>& v) {
    json o = json::object();
    for (const auto& [k, n] : v) o[std::to_string(k)] = n;
    return o;
  };
  json j{{"defenders", defenders},
         {"answeredDefenders", answeredDefenders},
         {"durationSeconds", static_cast<double>(elapsed.count()) / 1000.0},
         {"heartbeats", stats.heartbeats},
         {"answered", stats.heartbeatsOk},
         {"registered", stats.registered},
         {"badReplies", stats.badReplies},
         {"errors", stats.errors()},
         {"errorsByStatus", errors},
         {"latencyMs",
          {{"p50", clamp(stats.latencyMillis(0.5))},
           {"p99", clamp(stats.latencyMillis(0.99))},
           {"max", static_cast<double>(c.maxLatencyMicros) / 1000.0}}},
         {"connections",
          {{"open", c.open},
           {"connects", c.connects},
           {"reconnects", c.reconnects},
           {"connectFailures", c.connectFailures},
           {"drops", c.drops},
           {"timeouts", c.timeouts},
           {"staleRetries", c.staleRetries},
           {"down", c.down},
           {"recoveries", c.recoveries},
           {"lastRecoveryAtMs", c.lastRecoveryAtMs},
           {"connectFailuresAt",
            {{"tcp", c.tcpFailures}, {"tls", c.tlsFailures}, {"upgrade", c.upgradeFailures}}},
           {"upgradeRefusals", pairs(c.upgradeRefusals)},
           {"closeCodes", pairs(c.closeCodes)}}},
         {"pushes",
          {{"settings", c.pushSettings}, {"removed", c.pushRemoved}, {"backoff", c.pushBackoff}}},
         {"reRegistrations", c.reRegistrations}};
  if (check) {
    j["falseDisconnects"] = {{"checked", check->checked},
                             {"shownDisconnected", check->shownDisconnected},
                             {"sample", check->sample}};
  }
  return j.dump();
}

}  // namespace dc::sim
