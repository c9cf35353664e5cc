#include "channel/asio_listener.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/core/detail/base64.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket/rfc6455.hpp>

#include <spdlog/spdlog.h>

#include "channel/ws_session.h"

namespace dc::channel {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

/// A connection that a stop drains (the HTTP sessions; the WebSocket ones are the hub's).
class Drainable {
 public:
  virtual ~Drainable() = default;
  /// Starts the drain on the connection's strand. Thread-safe.
  virtual void postDrain() = 0;
};

struct AsioListener::Impl {
  Impl(AsioListenerOptions o, RequestHandler h) : options(std::move(o)), handler(std::move(h)) {
    if (options.webSocket.authorize)
      ws.emplace(options,
                 [this](std::function<void()> task) { return trySubmit(std::move(task)); });
  }

  const AsioListenerOptions options;
  const RequestHandler handler;
  // Declared before the io_context: sessions, destroyed with it, still count down here.
  std::atomic<size_t> connections{0};
  std::atomic<size_t> queued{0};
  std::atomic<size_t> busy{0};
  std::atomic<uint64_t> shed{0};
  std::atomic<uint64_t> refused{0};
  std::mutex addressMu;
  std::unordered_map<std::string, size_t> perAddress;
  std::optional<ssl::context> tls;
  std::optional<WsHub> ws;  // the WebSocket sessions, when offered (outlives the io_context)
  // The HTTP sessions, for the drain. `draining` (under the mutex) is set once by stop();
  // `drained` is told when the last connection ends meanwhile.
  std::mutex sessionsMu;
  std::unordered_map<const void*, std::weak_ptr<Drainable>> sessions;
  bool draining = false;
  std::condition_variable drained;

  std::unique_ptr<asio::io_context> ioc;
  // Keeps the I/O threads running while no socket operation is pending (e.g. during a drain,
  // when the acceptor is closed and the last requests are on workers, their answers to come).
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::optional<tcp::acceptor> acceptor;
  std::optional<asio::steady_timer> acceptRetry;
  std::optional<asio::thread_pool> pool;
  std::vector<std::thread> threads;
  int port = 0;
  bool running = false;

  /// Runs `task` on the worker pool, counted as queued then busy; false (and counted as shed)
  /// when `maxQueued` tasks wait already.
  bool trySubmit(std::function<void()> task) {
    if (options.maxQueued > 0 && queued.load() >= options.maxQueued) {
      ++shed;
      return false;
    }
    ++queued;
    asio::post(*pool, [this, task = std::move(task)] {
      --queued;
      ++busy;
      task();
      --busy;
    });
    return true;
  }

  /// Counts a new connection from `address`; false when it is beyond the per-address cap.
  bool admit(const std::string& address) {
    ++connections;
    std::lock_guard lock(addressMu);
    const size_t n = ++perAddress[address];
    return options.maxConnectionsPerAddress == 0 || n <= options.maxConnectionsPerAddress;
  }
  void release(const std::string& address) {
    {
      std::lock_guard lock(addressMu);
      auto it = perAddress.find(address);
      if (it != perAddress.end() && --it->second == 0) perAddress.erase(it);
    }
    if (--connections == 0) {
      std::lock_guard lock(sessionsMu);  // a stop waiting for the drain sees the change
      drained.notify_all();
    }
  }

  /// Registers an HTTP session for the drain; false when the drain has begun already.
  bool enroll(const void* key, std::weak_ptr<Drainable> session) {
    std::lock_guard lock(sessionsMu);
    sessions.emplace(key, std::move(session));
    return !draining;
  }
  void unenroll(const void* key) {
    std::lock_guard lock(sessionsMu);
    sessions.erase(key);
  }
  /// Tells every connection that the Console stops (docs/defender-channel.md, "Stop").
  void beginDrain() {
    std::vector<std::shared_ptr<Drainable>> targets;
    {
      std::lock_guard lock(sessionsMu);
      draining = true;
      targets.reserve(sessions.size());
      for (auto& [_, w] : sessions)
        if (auto sp = w.lock()) targets.push_back(std::move(sp));
    }
    for (auto& t : targets) t->postDrain();
    if (ws) ws->drainAll();
  }
  /// Waits until every connection has ended or is a WebSocket whose answers are written and
  /// whose close frame is on its way (WsHub::drainedOpen), or `clock` reaches `until`. Then, for
  /// at most kCloseFlush of wall time, lets those close frames reach the socket.
  void awaitDrained(const Clock& clock, TimePoint until) {
    std::unique_lock lock(sessionsMu);
    auto busy = [this] {
      const size_t open = connections.load();
      const size_t closing = ws ? ws->drainedOpen.load() : 0;
      return open > closing;
    };
    while (busy() && clock.now() < until)
      drained.wait_for(lock, std::chrono::milliseconds(10));  // the clock may be a test's
    constexpr auto kCloseFlush = std::chrono::milliseconds(200);
    const auto flushUntil = std::chrono::steady_clock::now() + kCloseFlush;
    while (connections.load() > 0 && std::chrono::steady_clock::now() < flushUntil)
      drained.wait_for(lock, std::chrono::milliseconds(10));
  }

  void accept();
};

namespace {

using Seconds = std::chrono::seconds;

/// One connection's place in the counters, given back when the session ends.
class Slot {
 public:
  Slot(AsioListener::Impl& impl, std::string address)
      : impl_(impl), address_(std::move(address)), admitted_(impl_.admit(address_)) {}
  ~Slot() { impl_.release(address_); }
  Slot(const Slot&) = delete;
  Slot& operator=(const Slot&) = delete;
  const std::string& address() const { return address_; }
  bool admitted() const { return admitted_; }

 private:
  AsioListener::Impl& impl_;
  std::string address_;
  bool admitted_;
};

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view view(beast::string_view s) {
  return {s.data(), s.size()};
}

constexpr size_t kLineLimit = 8192;  // request line and each header line, as cpp-httplib's

/// A malformed request (as opposed to a timeout, a reset or the peer closing mid-request).
bool isParseError(const beast::error_code& ec) {
  return ec && &ec.category() == &http::make_error_code(http::error::bad_target).category() &&
         ec != http::error::end_of_stream && ec != http::error::partial_message;
}

/// The HTTP session, shared by the plain and the TLS connection (`Derived` provides stream(),
/// shutdown() and shared_from_this()). Every member runs on the connection's strand.
/// True when `key` is the base64 encoding of 16 bytes (RFC 6455 §4.2.1): 24 characters that
/// decode to 16 bytes and encode back to themselves (no stray bits in the last character).
bool validWebSocketKey(std::string_view key) {
  namespace base64 = beast::detail::base64;
  if (key.size() != base64::encoded_size(16)) return false;
  unsigned char raw[base64::decoded_size(base64::encoded_size(16))];
  const auto [written, read] = base64::decode(raw, key.data(), key.size());
  if (written != 16 || read != 22) return false;
  char again[base64::encoded_size(16)];
  base64::encode(again, raw, 16);
  return std::string_view(again, sizeof again) == key;
}

/// Where an HTTP session is, for the drain.
enum class Phase {
  kWaiting,    // TLS handshake, or waiting for a complete request head: nothing received yet
  kServing,    // a request head was received: reading its body, handling it, writing its answer
  kClosing,    // closing after an answer
  kHandedOff,  // the connection became a WebSocket session
};

template <class Derived>
class Session : public Drainable {
 public:
  Session(AsioListener::Impl& impl, std::string address, asio::any_io_executor executor)
      : impl_(impl),
        slot_(std::make_shared<Slot>(impl, std::move(address))),
        executor_(std::move(executor)) {}
  ~Session() override { impl_.unenroll(this); }

  void postDrain() override {
    asio::post(executor_, [sp = self().shared_from_this()] { sp->beginDrain(); });
  }

 public:  // the strand's handlers and the derived sessions call these
  Derived& self() { return static_cast<Derived&>(*this); }
  beast::tcp_stream& lowest() { return beast::get_lowest_layer(self().stream()); }
  const AsioListenerOptions& options() const { return impl_.options; }

  /// On the strand, first thing: joins the drain registry (draining at once when a stop began).
  void enroll() { draining_ = !impl_.enroll(this, self().weak_from_this()); }

  /// A stop: a connection that has received no request yet is closed now (its pending read is
  /// cancelled); one serving a request finishes it, answers with `Connection: close` and closes.
  void beginDrain() {
    if (draining_) return;
    draining_ = true;
    if (phase_ == Phase::kWaiting) lowest().cancel();
  }

  /// Waits for the next request: the first one (or one already buffered) must arrive whole
  /// within the header timeout; between requests the connection may idle for the idle timeout.
  void awaitRequest(bool first) {
    if (draining_) {      // the Console stops: no further request is read
      if (first) return;  // nothing was answered: the connection is closed
      return self().shutdown();
    }
    phase_ = Phase::kWaiting;
    head_ = Request{};
    head_.remoteAddr = slot_->address();
    headRequest_ = false;
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(options().maxHeaderBytes + 8192));
    parser_->body_limit(options().maxBodyBytes);
    if (first || buffer_.size() > 0) return readHeader();
    lowest().expires_after(Seconds(options().idleTimeoutSeconds));
    self().stream().async_read_some(
        buffer_.prepare(4096), [sp = self().shared_from_this()](beast::error_code ec, size_t n) {
          // Idle timeout, the peer closed, or a stop began: nothing to answer.
          if (ec || sp->draining_) return;
          sp->buffer_.commit(n);
          sp->readHeader();
        });
  }

  void readHeader() {
    lowest().expires_after(Seconds(options().headerTimeoutSeconds));
    http::async_read_header(
        self().stream(), buffer_, *parser_,
        [sp = self().shared_from_this()](beast::error_code ec, size_t) { sp->onHeader(ec); });
  }

  void onHeader(beast::error_code ec) {
    if (!ec || isParseError(ec))
      phase_ = Phase::kServing;  // a request (or a refusal) to answer, even during a stop
    if (ec == http::error::header_limit)
      return refuse(Error::invalid("headers_too_large", "headers",
                                   "the request head exceeds " +
                                       std::to_string(options().maxHeaderBytes + 8192) + " bytes"),
                    431);
    if (ec == http::error::body_limit) return refuse(bodyTooLarge());
    if (isParseError(ec))
      return refuse(Error::invalid("bad_request", "request",
                                   "malformed HTTP request head (" + ec.message() + ")"));
    if (ec) return;  // timeout, reset or closed mid-head: nothing to answer
    const auto& req = parser_->get();
    version_ = req.version();
    head_.method = std::string(view(req.method_string()));
    const std::string_view target = view(req.target());
    head_.path = std::string(target.substr(0, target.find('?')));
    headRequest_ = req.method() == http::verb::head;
    if (!slot_->admitted()) {
      ++impl_.refused;
      Error e{ErrorKind::kRateLimited,
              "too_many_connections",
              "address " + slot_->address() + " already holds " +
                  std::to_string(options().maxConnectionsPerAddress) + " connections to the " +
                  options().name + "; reuse one (keep-alive)",
              {}};
      e.retryAfterSeconds = 5;
      return refuse(e);
    }
    // The same head contract as the cpp-httplib front (docs/security.md, "Hostile input").
    if (req.method() == http::verb::unknown)
      return refuse(Error::invalid("bad_request", "request",
                                   "malformed HTTP request line (expected METHOD /path HTTP/1.1 "
                                   "with a known method)"));
    if (req.target().size() > kLineLimit)
      return refuse(Error::invalid("uri_too_long", "path",
                                   "the request line (method, path and query) exceeds 8192 bytes"),
                    414);
    for (const auto& f : req)
      if (f.name_string().size() + f.value().size() + 2 > kLineLimit)
        return refuse(Error::invalid("invalid_header", "headers",
                                     "a request header is malformed or longer than 8192 bytes"));
    const size_t count = static_cast<size_t>(std::distance(req.begin(), req.end()));
    if (count > options().maxHeaderCount)
      return refuse(
          Error::invalid("too_many_headers", "headers",
                         "the request has " + std::to_string(count) + " headers; at most " +
                             std::to_string(options().maxHeaderCount)),
          431);
    size_t bytes = 0;  // counted as the cpp-httplib front counts them
    for (const auto& f : req) bytes += f.name_string().size() + f.value().size() + 4;
    if (bytes > options().maxHeaderBytes)
      return refuse(
          Error::invalid("headers_too_large", "headers",
                         "the request headers take " + std::to_string(bytes) + " bytes; at most " +
                             std::to_string(options().maxHeaderBytes)),
          431);
    const auto method = req.method();
    if (parser_->chunked() && method != http::verb::post)
      return refuse(
          Error::invalid("length_required", "Transfer-Encoding",
                         "chunked bodies are accepted on POST only; send " +
                             std::string(view(req.method_string())) + " with Content-Length"),
          411);
    if ((method == http::verb::post || method == http::verb::put || method == http::verb::patch) &&
        !parser_->content_length() && !parser_->chunked())
      return refuse(Error::invalid("length_required", "Content-Length",
                                   "a " + std::string(view(req.method_string())) +
                                       " request needs Content-Length (or chunked transfer "
                                       "encoding)"),
                    411);
    if (iequals(view(req[http::field::expect]), "100-continue") && !parser_->is_done()) {
      auto cont =
          std::make_shared<http::response<http::empty_body>>(http::status::continue_, version_);
      lowest().expires_after(Seconds(options().bodyTimeoutSeconds));
      return http::async_write(self().stream(), *cont,
                               [sp = self().shared_from_this(), cont](beast::error_code e, size_t) {
                                 if (!e) sp->readBody();
                               });
    }
    readBody();
  }

  void readBody() {
    lowest().expires_after(Seconds(options().bodyTimeoutSeconds));
    http::async_read(
        self().stream(), buffer_, *parser_,
        [sp = self().shared_from_this()](beast::error_code ec, size_t) { sp->onBody(ec); });
  }

  void onBody(beast::error_code ec) {
    if (ec == http::error::body_limit) return refuse(bodyTooLarge());
    if (isParseError(ec))
      return refuse(Error::invalid("invalid_body", "body",
                                   "the request body could not be read: its chunked encoding "
                                   "is malformed"));
    if (ec) return;  // timeout, reset or closed mid-body
    auto& req = parser_->get();
    if (impl_.ws && beast::websocket::is_upgrade(req) && isWebSocketPath(view(req.target())))
      return upgrade();
    keepAlive_ = req.keep_alive();
    Request r = head_;
    r.authorization = std::string(view(req[http::field::authorization]));
    r.body = std::move(req.body());
    r.target = std::string(view(req.target()));
    r.headers.reserve(static_cast<size_t>(std::distance(req.begin(), req.end())));
    for (const auto& f : req)
      r.headers.emplace_back(std::string(view(f.name_string())), std::string(view(f.value())));
    dispatch(std::move(r));
  }

  /// Runs the handler on the worker pool, or sheds the request when too many wait already.
  void dispatch(Request r) {
    auto& im = impl_;
    if (options().maxQueued > 0 && im.queued.load() >= options().maxQueued) {
      ++im.shed;
      Error e{ErrorKind::kUnavailable,
              "overloaded",
              "the Console is beyond its capacity; retry after the Retry-After delay",
              {}};
      e.retryAfterSeconds = options().shedRetryAfter ? options().shedRetryAfter(r) : 5;
      return write(errorResponse(e));
    }
    ++im.queued;
    asio::post(*im.pool, [sp = self().shared_from_this(), r = std::move(r), &im]() mutable {
      --im.queued;
      ++im.busy;
      Response res;
      try {
        res = im.handler(r);
      } catch (const std::exception& e) {
        spdlog::error("{}: {} {} failed: {}", im.options.name, r.method, r.path, e.what());
        res = errorResponse(Error::internal("the request failed; see the Console's log"));
      }
      --im.busy;
      auto executor = sp->self().stream().get_executor();
      asio::post(executor, [sp = std::move(sp), res = std::move(res)]() mutable {
        sp->write(std::move(res));
      });
    });
  }

  bool isWebSocketPath(std::string_view target) const {
    const auto path = target.substr(0, target.find('?'));
    const auto& paths = options().webSocket.paths;
    return std::find(paths.begin(), paths.end(), path) != paths.end();
  }

  /// A WebSocket upgrade: checked here, authorized on a worker (shed like a request), then the
  /// connection is handed to a WebSocket session (channel/ws_session.h).
  void upgrade() {
    auto req = std::make_shared<WsHub::Upgrade>(parser_->release());
    if (!validWebSocketKey(view((*req)[http::field::sec_websocket_key])))
      return refuse(Error::invalid("invalid_websocket_key", "Sec-WebSocket-Key",
                                   "a WebSocket upgrade needs Sec-WebSocket-Key: the base64 "
                                   "encoding of 16 bytes (RFC 6455 section 4.2.1)"));
    if ((*req)[http::field::sec_websocket_version] != "13")
      return refuse(Error::invalid("bad_request", "Sec-WebSocket-Version",
                                   "a WebSocket upgrade needs Sec-WebSocket-Version: 13"));
    Request r;
    r.method = std::string(view(req->method_string()));
    const std::string_view target = view(req->target());
    r.path = std::string(target.substr(0, target.find('?')));
    r.authorization = std::string(view((*req)[http::field::authorization]));
    r.remoteAddr = slot_->address();
    auto task = [sp = self().shared_from_this(), r, req]() mutable {
      WsUpgrade u;
      try {
        u = sp->impl_.options.webSocket.authorize(r);
      } catch (const std::exception& e) {
        spdlog::error("{}: WebSocket upgrade failed: {}", sp->options().name, e.what());
        u.refusal = errorResponse(Error::internal("the upgrade failed; see the Console's log"));
      }
      auto executor = sp->self().stream().get_executor();
      asio::post(executor, [sp = std::move(sp), u = std::move(u), req]() mutable {
        if (u.refusal) {
          u.refusal->close = true;
          return sp->write(std::move(*u.refusal));
        }
        sp->self().handOff(std::move(*req), std::move(u.binding));
      });
    };
    if (impl_.trySubmit(std::move(task))) return;
    Error e{ErrorKind::kUnavailable,
            "overloaded",
            "the Console is beyond its capacity; retry after the Retry-After delay",
            {}};
    e.retryAfterSeconds = options().shedRetryAfter ? options().shedRetryAfter(r) : 5;
    refuse(e);
  }

  void refuse(const Error& e, int status = 0) {
    auto res = errorResponse(e, status);
    res.close = true;
    write(std::move(res));
  }

  void write(Response r) {
    if (options().decorate) options().decorate(head_, r);
    if (r.stream) return writeStream(std::move(r));
    auto res = std::make_shared<http::response<http::string_body>>(
        static_cast<http::status>(r.status), version_ == 10 ? 10 : 11);
    if (!r.contentType.empty()) res->set(http::field::content_type, r.contentType);
    for (const auto& [name, value] : r.headers) res->insert(name, value);
    res->body() = std::move(r.body);
    const bool close = r.close || !keepAlive_ || draining_;
    res->keep_alive(!close);
    res->prepare_payload();
    lowest().expires_after(Seconds(options().bodyTimeoutSeconds));
    auto then = [sp = self().shared_from_this(), res, close](beast::error_code ec, size_t) {
      if (ec) return;
      if (close) return sp->self().shutdown();
      sp->awaitRequest(false);
    };
    if (!headRequest_) return http::async_write(self().stream(), *res, std::move(then));
    // HEAD: the head of the answer GET would get, its Content-Length included.
    auto sr = std::make_shared<http::response_serializer<http::string_body>>(*res);
    http::async_write_header(
        self().stream(), *sr,
        [sr, then = std::move(then)](beast::error_code ec, size_t n) mutable { then(ec, n); });
  }

  using Producer = std::function<bool(std::string&, bool&)>;

  /// A streamed answer: the head, then one piece at a time — produced on a worker, written
  /// here as a chunk, then the next piece asked for — and the last chunk. HTTP/1.0 has no
  /// chunked encoding: the pieces are sent as they are and closing the connection ends the body.
  void writeStream(Response r) {
    auto res = std::make_shared<http::response<http::empty_body>>(
        static_cast<http::status>(r.status), version_ == 10 ? 10 : 11);
    if (!r.contentType.empty()) res->set(http::field::content_type, r.contentType);
    for (const auto& [name, value] : r.headers) res->insert(name, value);
    const bool chunked = version_ != 10;
    const bool close = r.close || !keepAlive_ || !chunked || draining_;
    res->keep_alive(!close);
    if (chunked) res->chunked(true);
    auto sr = std::make_shared<http::response_serializer<http::empty_body>>(*res);
    auto producer = std::make_shared<Producer>(std::move(r.stream));
    lowest().expires_after(Seconds(options().bodyTimeoutSeconds));
    http::async_write_header(self().stream(), *sr,
                             [sp = self().shared_from_this(), res, sr, producer, close, chunked](
                                 beast::error_code ec, size_t) {
                               if (ec) return;
                               if (sp->headRequest_) {
                                 if (close) return sp->self().shutdown();
                                 return sp->awaitRequest(false);
                               }
                               sp->produce(producer, close, chunked);
                             });
  }

  void produce(std::shared_ptr<Producer> producer, bool close, bool chunked) {
    auto& im = impl_;
    asio::post(*im.pool, [sp = self().shared_from_this(), producer, close, chunked, &im] {
      auto piece = std::make_shared<std::string>();
      bool done = false;
      bool ok = false;
      try {
        ok = (*producer)(*piece, done);
      } catch (const std::exception& e) {
        spdlog::error("{}: {} {}: streaming the answer failed: {}", im.options.name,
                      sp->head_.method, sp->head_.path, e.what());
      }
      auto executor = sp->self().stream().get_executor();
      asio::post(executor, [sp, producer, piece, done, ok, close, chunked] {
        sp->writePiece(producer, piece, done, ok, close, chunked);
      });
    });
  }

  void writePiece(std::shared_ptr<Producer> producer, std::shared_ptr<std::string> piece, bool done,
                  bool ok, bool close, bool chunked) {
    if (!ok) return self().shutdown();  // the client sees the body cut short
    lowest().expires_after(Seconds(options().bodyTimeoutSeconds));
    auto next = [sp = self().shared_from_this(), producer, done, close, chunked](
                    beast::error_code ec, size_t) {
      if (ec) return;
      if (!done) return sp->produce(producer, close, chunked);
      if (!chunked) return sp->self().shutdown();
      sp->lowest().expires_after(Seconds(sp->options().bodyTimeoutSeconds));
      asio::async_write(sp->self().stream(), http::make_chunk_last(),
                        [sp, close](beast::error_code e, size_t) {
                          if (e) return;
                          if (close) return sp->self().shutdown();
                          sp->awaitRequest(false);
                        });
    };
    if (piece->empty()) return next({}, 0);  // an empty chunk would end the body
    if (!chunked)
      return asio::async_write(
          self().stream(), asio::buffer(*piece),
          [piece, next = std::move(next)](beast::error_code ec, size_t n) mutable { next(ec, n); });
    asio::async_write(
        self().stream(), http::make_chunk(asio::buffer(*piece)),
        [piece, next = std::move(next)](beast::error_code ec, size_t n) mutable { next(ec, n); });
  }

  Error bodyTooLarge() const {
    return Error{ErrorKind::kTooLarge, "body_too_large",
                 "request body exceeds this listener's limit of " +
                     std::to_string(options().maxBodyBytes) + " bytes",
                 "body"};
  }

  AsioListener::Impl& impl_;
  std::shared_ptr<Slot> slot_;            // shared: a WebSocket session takes it over
  const asio::any_io_executor executor_;  // the connection's strand (outlives a hand-off)
  Phase phase_ = Phase::kWaiting;
  bool draining_ = false;  // a stop began (set on the strand)
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  Request head_;  // method, path and address of the request being answered
  bool headRequest_ = false;
  unsigned version_ = 11;
  bool keepAlive_ = true;
};

class PlainSession final : public Session<PlainSession>,
                           public std::enable_shared_from_this<PlainSession> {
 public:
  PlainSession(AsioListener::Impl& impl, tcp::socket socket, std::string address)
      : Session(impl, std::move(address), socket.get_executor()), stream_(std::move(socket)) {}
  using std::enable_shared_from_this<PlainSession>::shared_from_this;
  using std::enable_shared_from_this<PlainSession>::weak_from_this;

  void run() {
    asio::dispatch(stream_.get_executor(), [sp = shared_from_this()] {
      sp->enroll();
      sp->awaitRequest(/*first=*/true);
    });
  }
  beast::tcp_stream& stream() { return stream_; }
  void handOff(WsHub::Upgrade req, WsBinding binding) {
    phase_ = Phase::kHandedOff;
    impl_.ws->start(std::move(stream_), std::move(req), std::move(binding), slot_->address(), slot_,
                    buffer_);
  }
  /// Half-closes, then reads and drops what the client still sends (a body refused before it
  /// was read) so that the answer is not lost to a reset; bounded by the header timeout.
  void shutdown() {
    phase_ = Phase::kClosing;
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    if (ec) return;
    drain_ = std::make_unique<char[]>(kDrain);
    lowest().expires_after(Seconds(options().headerTimeoutSeconds));
    drain();
  }

 private:
  friend class Session<PlainSession>;
  static constexpr size_t kDrain = 4096;
  void drain() {
    stream_.async_read_some(asio::buffer(drain_.get(), kDrain),
                            [sp = shared_from_this()](beast::error_code ec, size_t) {
                              if (!ec) sp->drain();
                            });
  }
  beast::tcp_stream stream_;
  std::unique_ptr<char[]> drain_;
};

class TlsSession final : public Session<TlsSession>,
                         public std::enable_shared_from_this<TlsSession> {
 public:
  TlsSession(AsioListener::Impl& impl, tcp::socket socket, ssl::context& ctx, std::string address)
      : Session(impl, std::move(address), socket.get_executor()), stream_(std::move(socket), ctx) {}
  using std::enable_shared_from_this<TlsSession>::shared_from_this;
  using std::enable_shared_from_this<TlsSession>::weak_from_this;

  void run() {
    asio::dispatch(stream_.get_executor(), [sp = shared_from_this()] {
      sp->enroll();
      if (sp->draining_) return;  // a stop began: the connection is closed unserved
      sp->lowest().expires_after(Seconds(sp->options().headerTimeoutSeconds));
      sp->stream_.async_handshake(ssl::stream_base::server, [sp](beast::error_code ec) {
        if (ec) {
          spdlog::debug("{}: TLS handshake with {} failed: {}", sp->options().name,
                        sp->slot_->address(), ec.message());
          return;
        }
        sp->awaitRequest(/*first=*/true);
      });
    });
  }
  beast::ssl_stream<beast::tcp_stream>& stream() { return stream_; }
  void handOff(WsHub::Upgrade req, WsBinding binding) {
    phase_ = Phase::kHandedOff;
    impl_.ws->start(std::move(stream_), std::move(req), std::move(binding), slot_->address(), slot_,
                    buffer_);
  }
  void shutdown() {
    phase_ = Phase::kClosing;
    lowest().expires_after(Seconds(options().headerTimeoutSeconds));
    stream_.async_shutdown([sp = shared_from_this()](beast::error_code) {});
  }

 private:
  friend class Session<TlsSession>;
  beast::ssl_stream<beast::tcp_stream> stream_;
};

}  // namespace

void AsioListener::Impl::accept() {
  // On the acceptor's strand (its handler too), as is the close at a stop.
  acceptor->async_accept(asio::make_strand(*ioc), [this](beast::error_code ec, tcp::socket s) {
    if (ec == asio::error::operation_aborted || !acceptor->is_open()) return;
    if (ec) {
      // Typically EMFILE: the descriptors are exhausted. Try again shortly instead of spinning.
      spdlog::warn("{}: accept failed: {}", options.name, ec.message());
      acceptRetry->expires_after(std::chrono::milliseconds(100));
      acceptRetry->async_wait([this](beast::error_code e) {
        if (!e) accept();
      });
      return;
    }
    beast::error_code ignored;
    s.set_option(tcp::no_delay(true), ignored);  // small answers must not wait for delayed ACKs
    const auto peer = s.remote_endpoint(ignored);
    std::string address = ignored ? std::string("unknown") : peer.address().to_string();
    if (tls)
      std::make_shared<TlsSession>(*this, std::move(s), *tls, std::move(address))->run();
    else
      std::make_shared<PlainSession>(*this, std::move(s), std::move(address))->run();
    accept();
  });
}

AsioListener::AsioListener(AsioListenerOptions options, RequestHandler handler)
    : options_(options), impl_(std::make_shared<Impl>(std::move(options), std::move(handler))) {}

AsioListener::~AsioListener() {
  stop();
}

int AsioListener::port() const {
  return impl_->port;
}

AsioListenerLoad AsioListener::load() const {
  AsioListenerLoad l;
  l.connections = impl_->connections.load();
  l.queued = impl_->queued.load();
  l.busy = impl_->busy.load();
  l.shed = impl_->shed.load();
  l.refusedConnections = impl_->refused.load();
  if (impl_->ws) {
    l.wsSessions = impl_->ws->open();
    l.wsMessages = impl_->ws->messages.load();
    l.wsPushes = impl_->ws->pushes.load();
    l.wsCloses = impl_->ws->closes();
  }
  return l;
}

size_t AsioListener::pushTo(const std::string& key, const std::string& text) {
  return impl_->ws ? impl_->ws->pushTo(key, text) : 0;
}

size_t AsioListener::pushAll(const std::string& text) {
  return impl_->ws ? impl_->ws->pushAll(text) : 0;
}

Result<int> AsioListener::start() {
  auto& im = *impl_;
  const auto& o = im.options;
  if (!o.tlsCertFile.empty()) {
    try {
      im.tls.emplace(ssl::context::tls_server);
      im.tls->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                          ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                          ssl::context::no_tlsv1_1);
      im.tls->use_certificate_chain_file(o.tlsCertFile);
      im.tls->use_private_key_file(o.tlsKeyFile, ssl::context::pem);
      if (!o.clientCaFile.empty()) {
        im.tls->load_verify_file(o.clientCaFile);
        im.tls->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
      }
    } catch (const boost::system::system_error& e) {
      im.tls.reset();
      return Error{
          ErrorKind::kInvalidArgument, "tls_invalid",
          o.name + ": cannot load the TLS certificate '" + o.tlsCertFile + "', key '" +
              o.tlsKeyFile + "'" +
              (o.clientCaFile.empty() ? std::string() : " or client CA '" + o.clientCaFile + "'") +
              " (" + e.code().message() + ")",
          "tls"};
    }
  }
  im.ioc = std::make_unique<asio::io_context>();
  im.work.emplace(im.ioc->get_executor());
  const std::string where = o.host + ":" + std::to_string(o.port);
  beast::error_code ec;
  tcp::resolver resolver(*im.ioc);
  auto endpoints = resolver.resolve(o.host, std::to_string(o.port),
                                    tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (ec || endpoints.empty())
    return Error{ErrorKind::kUnavailable, "bind_failed",
                 o.name + ": cannot listen on " + where + " (" + ec.message() + ")", "port"};
  const tcp::endpoint endpoint = *endpoints.begin();
  im.acceptor.emplace(asio::make_strand(*im.ioc));
  if (!im.acceptor->open(endpoint.protocol(), ec))
    im.acceptor->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) im.acceptor->bind(endpoint, ec);
  if (!ec) im.acceptor->listen(o.backlog, ec);
  if (ec) {
    im.acceptor.reset();
    if (ec == asio::error::address_in_use)
      return Error{ErrorKind::kUnavailable, "port_in_use",
                   o.name + ": " + where + " is already in use", "port"};
    return Error{ErrorKind::kUnavailable, "bind_failed",
                 o.name + ": cannot listen on " + where + " (" + ec.message() + ")", "port"};
  }
  im.port = im.acceptor->local_endpoint().port();
  im.acceptRetry.emplace(im.acceptor->get_executor());
  im.pool.emplace(std::max<size_t>(1, o.workers));
  im.accept();
  const size_t threads =
      o.ioThreads > 0 ? o.ioThreads : std::max(1u, std::thread::hardware_concurrency());
  for (size_t i = 0; i < threads; ++i)
    im.threads.emplace_back([&im] {
      for (;;) {
        try {
          im.ioc->run();
          return;
        } catch (const std::exception& e) {
          spdlog::error("{}: I/O thread: {}", im.options.name, e.what());
        }
      }
    });
  im.running = true;
  spdlog::info("{}: event-driven front on {}:{} ({} I/O threads, {} workers{})", o.name, o.host,
               im.port, threads, o.workers, im.tls ? ", TLS" : "");
  return im.port;
}

void AsioListener::stop() {
  auto& im = *impl_;
  if (!im.running) return;
  im.running = false;
  static const SystemClock systemClock;
  const Clock& clock = im.options.clock ? *im.options.clock : systemClock;
  const TimePoint until = clock.now() + Seconds(std::max(0, im.options.drainSeconds));
  // The drain (docs/defender-channel.md, "Stop"): no new connection; every connection stops
  // reading new requests and messages, answers those already received, then closes
  // (WebSockets with 1001 going_away); all within the drain bound.
  asio::post(im.acceptor->get_executor(), [&im] {
    beast::error_code ignored;
    im.acceptor->close(ignored);
    im.acceptRetry->cancel();
  });
  im.beginDrain();
  im.awaitDrained(clock, until);
  const size_t open = im.connections.load();
  const size_t closing = im.ws ? std::min(open, im.ws->drainedOpen.load()) : 0;
  if (open > closing)
    spdlog::warn("{}: {} connections still busy after the {} s drain; closing them",
                 im.options.name, open - closing, im.options.drainSeconds);
  im.work.reset();
  im.ioc->stop();
  for (auto& t : im.threads) t.join();
  im.threads.clear();
  im.pool->join();  // running handlers finish; answers not written by now are dropped
  im.pool.reset();
  im.acceptRetry.reset();
  im.acceptor.reset();
  im.ioc.reset();  // destroys every session: each connection is closed
}

}  // namespace dc::channel
