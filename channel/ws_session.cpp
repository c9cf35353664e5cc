#include "channel/ws_session.h"

#include <deque>
#include <optional>
#include <string_view>

#include <boost/asio/post.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/core/buffered_read_stream.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

namespace dc::channel {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using nlohmann::json;

namespace {

/// Envelopes nested deeper than this are not parsed at all (the body's own limit, checked by
/// the handler, is lower): keeps a hostile frame from recursing deeply.
constexpr int kMaxEnvelopeDepth = 64;

/// Frames one session may have waiting to be written (its answer plus pushes) before it is
/// judged not to read and dropped.
constexpr size_t kMaxQueuedFrames = 64;

/// True when the JSON text nests arrays/objects beyond `limit` (strings skipped).
bool nestsBeyond(std::string_view text, int limit) {
  int depth = 0;
  bool inString = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (inString) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        inString = false;
    } else if (c == '"') {
      inString = true;
    } else if (c == '{' || c == '[') {
      if (++depth > limit) return true;
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return false;
}

/// A parsed envelope, or the close it earns.
struct Envelope {
  WsMessage message;
  std::string id;  // the JSON text of `id`; "" when absent
  int closeCode = 0;
  const char* closeReason = "";
};

Envelope parseEnvelope(const std::string& text, std::string remoteAddr) {
  Envelope e;
  auto fail = [&e](int code, const char* reason) {
    e.closeCode = code;
    e.closeReason = reason;
    return e;
  };
  if (nestsBeyond(text, kMaxEnvelopeDepth)) return fail(1007, "invalid_json");
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return fail(1007, "invalid_json");
  auto type = j.find("type");
  if (type == j.end() || type->is_null()) return fail(1008, "missing_type");
  if (!type->is_string() || type->get_ref<const std::string&>().empty())
    return fail(1008, "unknown_type");
  e.message.type = type->get<std::string>();
  if (auto id = j.find("id"); id != j.end())
    e.id = id->dump(-1, ' ', false, json::error_handler_t::replace);
  auto body = j.find("body");
  e.message.body = body == j.end() ? std::string("{}")
                                   : body->dump(-1, ' ', false, json::error_handler_t::replace);
  e.message.remoteAddr = std::move(remoteAddr);
  return e;
}

/// `{"type":"result","id":…,"status":…,"body":…}` around a route's JSON answer.
std::string resultFrame(const std::string& id, const Response& r) {
  std::string out = R"({"type":"result",)";
  if (!id.empty()) {
    out += R"("id":)";
    out += id;
    out += ',';
  }
  out += R"("status":)";
  out += std::to_string(r.status);
  for (const auto& [name, value] : r.headers)
    if (beast::iequals(name, "Retry-After")) {
      out += R"(,"retryAfterSeconds":)";
      out += std::to_string(std::atoi(value.c_str()));
    }
  out += R"(,"body":)";
  out += r.body.empty() ? std::string("null") : r.body;
  out += '}';
  return out;
}

/// The connection under a WebSocket session: its first reads return the bytes the HTTP session
/// had already read behind the upgrade request (frames a client sent in the same packet), then
/// it reads from `Next`.
template <class Next>
class Prefixed : public beast::buffered_read_stream<Next, beast::flat_buffer> {
 public:
  Prefixed(Next next, beast::flat_buffer& already)
      : beast::buffered_read_stream<Next, beast::flat_buffer>(std::move(next)) {
    auto& b = this->buffer();
    b.commit(asio::buffer_copy(b.prepare(already.size()), already.data()));
    already.consume(already.size());
  }
};

// The WebSocket close tears down the stream below (found by argument-dependent lookup, as
// Beast's own for its ssl_stream).
template <class Next>
void teardown(beast::role_type role, Prefixed<Next>& s, beast::error_code& ec) {
  using beast::websocket::teardown;
  teardown(role, s.next_layer(), ec);
}
template <class Next, class Handler>
void async_teardown(beast::role_type role, Prefixed<Next>& s, Handler&& handler) {
  using beast::websocket::async_teardown;
  async_teardown(role, s.next_layer(), std::forward<Handler>(handler));
}

template <class Next>
class WsSession final : public WsSessionBase, public std::enable_shared_from_this<WsSession<Next>> {
 public:
  WsSession(WsHub& hub, Next stream, beast::flat_buffer& already, WsBinding binding,
            std::string remoteAddr, std::shared_ptr<void> hold)
      : hub_(hub),
        ws_(std::move(stream), already),
        executor_(ws_.get_executor()),
        binding_(std::move(binding)),
        remoteAddr_(std::move(remoteAddr)),
        hold_(std::move(hold)) {}

  ~WsSession() override {
    if (registered_) hub_.ended(this, key_);
    if (countedDrained_) --hub_.drainedOpen;
  }

  void run(WsHub::Upgrade request) {
    const auto& o = hub_.options;
    beast::get_lowest_layer(ws_).expires_never();  // the WebSocket keeps its own timeouts
    websocket::stream_base::timeout t;
    t.handshake_timeout = std::chrono::seconds(o.headerTimeoutSeconds);
    t.idle_timeout = std::chrono::seconds(2 * std::max(1, o.webSocket.pingSeconds));
    t.keep_alive_pings = true;
    ws_.set_option(t);
    // No limit of Beast's own (it would close 1009 without a reason): read() counts.
    ws_.read_message_max(0);
    auto req = std::make_shared<WsHub::Upgrade>(std::move(request));
    ws_.async_accept(*req, [sp = this->shared_from_this(), req](beast::error_code ec) {
      if (ec) {
        spdlog::debug("{}: WebSocket handshake with {} failed: {}", sp->hub_.options.name,
                      sp->remoteAddr_, ec.message());
        return;
      }
      sp->registered_ = true;
      if (!sp->hub_.opened(sp.get(), sp)) {
        // Upgraded while a stop began: closed as drained (nothing was received), so the stop
        // does not wait for it until its bound.
        sp->draining_ = true;
        return sp->closeWith(1001, "going_away");
      }
      sp->read();
    });
  }

  void post(std::string text) override {
    asio::post(executor_, [sp = this->shared_from_this(), text = std::move(text)]() mutable {
      if (sp->closing_) return;
      if (sp->out_.size() >= kMaxQueuedFrames) return sp->drop();  // it does not read
      ++sp->hub_.pushes;
      sp->send(std::move(text));
    });
  }
  void postClose(int code, std::string reason) override {
    asio::post(executor_, [sp = this->shared_from_this(), code, reason = std::move(reason)] {
      sp->closeWith(code, reason);
    });
  }
  void postDrain() override {
    asio::post(executor_, [sp = this->shared_from_this()] {
      sp->draining_ = true;
      sp->finishDrain();
    });
  }

 private:
  /// Reads the next message piece by piece (so that an oversize one is refused with its reason
  /// while the stream can still send a close frame): at most maxBodyBytes + 1 bytes buffered.
  /// Not while answers wait to be written, nor while a message waits behind the one in flight:
  /// a client that sends without reading its answers stops being read (so its unsent answers
  /// stay bounded), and the ping rule then closes it as silent.
  /// During a stop no new message is started; one partly read is read to its end.
  void read() {
    if (closing_ || reading_ || writing_ || !waiting_.empty()) return;
    if (draining_ && ws_.is_message_done()) return;
    reading_ = true;
    const size_t room = hub_.options.maxBodyBytes + 1 - buffer_.size();
    ws_.async_read_some(
        buffer_, room,
        [sp = this->shared_from_this()](beast::error_code ec, size_t) { sp->onRead(ec); });
  }

  void onRead(beast::error_code ec) {
    reading_ = false;
    if (ec == websocket::error::closed) {  // the peer's close frame, answered by Beast
      countClose(ws_.reason().code == websocket::close_code::none
                     ? 1005
                     : static_cast<int>(ws_.reason().code));
      return;
    }
    if (ec) {
      // Ping timeout, reset, a bad frame Beast failed itself (e.g. text that is not UTF-8 is
      // closed 1007), or our own close completing.
      if (!closing_) countClose(closeCodeOfFailure(ec));
      return;
    }
    if (closing_) return;
    if (ws_.got_binary()) return closeWith(1003, "binary_not_supported");
    if (buffer_.size() > hub_.options.maxBodyBytes) return closeWith(1009, "message_too_big");
    if (!ws_.is_message_done()) return read();
    std::string text = beast::buffers_to_string(buffer_.data());
    buffer_.consume(buffer_.size());
    if (inFlight_) {
      waiting_.emplace_back(std::move(text));
      return;  // reading resumes once the waiting message is taken and answers are written
    }
    process(std::move(text));
    read();
    finishDrain();
  }

  /// During a stop: once every message received is answered, the close (1001 going_away),
  /// queued behind the answers. A read pending meanwhile may still bring a message, and one
  /// partly read is read to its end: they are answered first (the Console has not sent its
  /// close yet, so the Defender may still send).
  void finishDrain() {
    if (draining_ && !inFlight_ && waiting_.empty() && ws_.is_message_done())
      closeWith(1001, "going_away");
  }

  int closeCodeOfFailure(const beast::error_code& ec) const {
    if (ec == websocket::error::bad_frame_payload) return 1007;
    if (ec.category() == websocket::make_error_code(websocket::error::closed).category())
      return 1002;
    return 1006;
  }

  void process(std::string text) {
    Envelope e = parseEnvelope(text, remoteAddr_);
    if (e.closeCode) return closeWith(e.closeCode, e.closeReason);
    Request shedProbe;  // for the Retry-After of a shed message (keyed by its hostname)
    shedProbe.body = e.message.body;
    shedProbe.remoteAddr = remoteAddr_;
    inFlight_ = true;
    auto task = [sp = this->shared_from_this(), msg = std::move(e.message), id = e.id,
                 key = key_]() mutable {
      WsAnswer a;
      try {
        a = sp->hub_.options.webSocket.handle(sp->binding_, key, msg);
      } catch (const std::exception& ex) {
        spdlog::error("{}: WebSocket {} message failed: {}", sp->hub_.options.name, msg.type,
                      ex.what());
        a.result = errorResponse(Error::internal("the message failed; see the Console's log"));
      }
      asio::post(sp->executor_, [sp, a = std::move(a), id = std::move(id)]() mutable {
        sp->onAnswer(std::move(a), id);
      });
    };
    if (hub_.submit(std::move(task))) return;
    inFlight_ = false;
    const auto now = std::chrono::steady_clock::now();
    if (now < backoffUntil_) return closeWith(1013, "overloaded");
    const int seconds = hub_.options.shedRetryAfter ? hub_.options.shedRetryAfter(shedProbe) : 5;
    backoffUntil_ = now + std::chrono::seconds(seconds);
    ++hub_.pushes;
    std::string backoff = R"({"type":"backoff","seconds":)";
    backoff += std::to_string(seconds);
    backoff += '}';
    send(std::move(backoff));
    Error overloaded{ErrorKind::kUnavailable,
                     "overloaded",
                     "the Console is beyond its capacity; send nothing for the back-off delay",
                     {}};
    overloaded.retryAfterSeconds = seconds;
    ++hub_.messages;
    send(resultFrame(e.id, errorResponse(overloaded)));
  }

  void onAnswer(WsAnswer a, const std::string& id) {
    inFlight_ = false;
    if (closing_) return;
    if (a.closeCode) return closeWith(a.closeCode, a.closeReason);
    if (!a.bindKey.empty() && key_.empty()) {
      key_ = a.bindKey;
      hub_.bound(this, key_);
    }
    ++hub_.messages;
    send(resultFrame(id, a.result));
    if (!waiting_.empty()) {
      std::string next = std::move(waiting_.front());
      waiting_.pop_front();
      process(std::move(next));
    }
    read();
    finishDrain();
  }

  struct Outgoing {
    std::string text;
    int closeCode = 0;  // non-zero: the close frame
    std::string reason;
  };

  void send(std::string text) {
    out_.push_back({std::move(text), 0, {}});
    if (!writing_) writeNext();
  }

  void closeWith(int code, std::string reason) {
    if (closing_) return;
    closing_ = true;
    waiting_.clear();
    countClose(code);
    out_.push_back({{}, code, std::move(reason)});
    if (!writing_) writeNext();
  }

  void writeNext() {
    if (out_.empty()) {
      writing_ = false;
      read();  // answers written: the next message may be read
      return;
    }
    writing_ = true;
    Outgoing& o = out_.front();
    if (o.closeCode) {
      if (draining_ && !countedDrained_) {
        countedDrained_ = true;  // answers written; only the close handshake is left
        ++hub_.drainedOpen;
      }
      websocket::close_reason reason(static_cast<websocket::close_code>(o.closeCode),
                                     beast::string_view(o.reason));
      ws_.async_close(reason, [sp = this->shared_from_this()](beast::error_code) {
        sp->out_.clear();
        sp->writing_ = false;
      });
      return;
    }
    ws_.text(true);
    ws_.async_write(asio::buffer(o.text),
                    [sp = this->shared_from_this()](beast::error_code ec, size_t) {
                      sp->out_.pop_front();
                      if (ec) {
                        sp->out_.clear();
                        sp->writing_ = false;
                        return;
                      }
                      sp->writeNext();
                    });
  }

  /// Ends a connection that cannot be written to (its peer does not read): no close handshake.
  void drop() {
    if (closing_) return;
    closing_ = true;
    waiting_.clear();
    countClose(1006);
    beast::error_code ignored;
    beast::get_lowest_layer(ws_).socket().close(ignored);
  }

  void countClose(int code) {
    if (counted_) return;
    counted_ = true;
    hub_.countClose(code);
  }

  WsHub& hub_;
  websocket::stream<Prefixed<Next>> ws_;
  asio::any_io_executor executor_;
  const WsBinding binding_;
  const std::string remoteAddr_;
  const std::shared_ptr<void> hold_;
  beast::flat_buffer buffer_;
  std::string key_;
  std::deque<std::string> waiting_;  // at most one message waiting behind the one in flight
  std::deque<Outgoing> out_;
  std::chrono::steady_clock::time_point backoffUntil_{};
  bool registered_ = false;
  bool reading_ = false;
  bool writing_ = false;
  bool inFlight_ = false;
  bool closing_ = false;
  bool countedDrained_ = false;  // counted in hub_.drainedOpen until destroyed
  bool draining_ = false;        // the Console stops: no new read; close once all is answered
  bool counted_ = false;
};

}  // namespace

WsHub::WsHub(const AsioListenerOptions& o, std::function<bool(std::function<void()>)> s)
    : options(o), submit(std::move(s)) {}

void WsHub::start(beast::tcp_stream stream, Upgrade request, WsBinding binding,
                  std::string remoteAddr, std::shared_ptr<void> hold, beast::flat_buffer& already) {
  std::make_shared<WsSession<beast::tcp_stream>>(
      *this, std::move(stream), already, std::move(binding), std::move(remoteAddr), std::move(hold))
      ->run(std::move(request));
}

void WsHub::start(beast::ssl_stream<beast::tcp_stream> stream, Upgrade request, WsBinding binding,
                  std::string remoteAddr, std::shared_ptr<void> hold, beast::flat_buffer& already) {
  std::make_shared<WsSession<beast::ssl_stream<beast::tcp_stream>>>(
      *this, std::move(stream), already, std::move(binding), std::move(remoteAddr), std::move(hold))
      ->run(std::move(request));
}

bool WsHub::opened(WsSessionBase* s, std::weak_ptr<WsSessionBase> w) {
  std::lock_guard lock(mu_);
  all_.emplace(s, std::move(w));
  return !stopping_;
}

void WsHub::bound(WsSessionBase* s, const std::string& key) {
  std::lock_guard lock(mu_);
  byKey_.emplace(key, s);
}

void WsHub::ended(WsSessionBase* s, const std::string& key) {
  std::lock_guard lock(mu_);
  all_.erase(s);
  if (!key.empty()) {
    auto [first, last] = byKey_.equal_range(key);
    for (auto it = first; it != last; ++it)
      if (it->second == s) {
        byKey_.erase(it);
        break;
      }
  }
}

void WsHub::countClose(int code) {
  std::lock_guard lock(mu_);
  ++closes_[code];
}

size_t WsHub::pushTo(const std::string& key, const std::string& text) {
  std::vector<std::shared_ptr<WsSessionBase>> targets;
  {
    std::lock_guard lock(mu_);
    if (stopping_) return 0;
    auto [first, last] = byKey_.equal_range(key);
    for (auto it = first; it != last; ++it)
      if (auto s = all_.find(it->second); s != all_.end())
        if (auto sp = s->second.lock()) targets.push_back(std::move(sp));
  }
  for (auto& t : targets) t->post(text);
  return targets.size();
}

size_t WsHub::pushAll(const std::string& text) {
  std::vector<std::shared_ptr<WsSessionBase>> targets;
  {
    std::lock_guard lock(mu_);
    if (stopping_) return 0;
    targets.reserve(all_.size());
    for (auto& [_, w] : all_)
      if (auto sp = w.lock()) targets.push_back(std::move(sp));
  }
  for (auto& t : targets) t->post(text);
  return targets.size();
}

void WsHub::drainAll() {
  std::vector<std::shared_ptr<WsSessionBase>> targets;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    targets.reserve(all_.size());
    for (auto& [_, w] : all_)
      if (auto sp = w.lock()) targets.push_back(std::move(sp));
  }
  for (auto& t : targets) t->postDrain();
}

size_t WsHub::open() const {
  std::lock_guard lock(mu_);
  return all_.size();
}

std::map<int, uint64_t> WsHub::closes() const {
  std::lock_guard lock(mu_);
  return closes_;
}

}  // namespace dc::channel
