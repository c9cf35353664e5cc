// The WebSocket sessions of the defender channel's event-driven front (internal to dc_channel;
// the contract is docs/defender-channel.md, "WebSocket transport"). AsioListener hands a
// connection over once its upgrade request was authorized; the hub keeps every open session
// (for pushes and for closing them at stop) and the counters.
//
// Per session, on the connection's strand:
//  - text frames only, each one JSON object `{"type", "id"?, "body"?}` of at most `maxBodyBytes`;
//    otherwise the session is closed (1003 binary_not_supported, 1007 invalid_json, 1008
//    missing_type / whatever WebSocketOptions::handle decides, 1009 message_too_big) and the
//    frame is not handled;
//  - one message at a time on a worker; one more may wait, then reading pauses (a connection
//    cannot queue unbounded work); answers go out in order;
//  - a message shed because too many wait for a worker is answered by a `backoff` push and a
//    503 overloaded result; another one within that back-off closes the session 1013 overloaded;
//  - pings and the idle close: Beast's keep-alive pings with an idle timeout of two periods.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include "channel/asio_listener.h"

namespace dc::channel {

/// What sessions share: the hub.
class WsSessionBase {
 public:
  virtual ~WsSessionBase() = default;
  /// Queues a text frame (dropped once the session is closing). Thread-safe: posts to the strand.
  virtual void post(std::string text) = 0;
  /// Closes with `code` and `reason`. Thread-safe: posts to the strand.
  virtual void postClose(int code, std::string reason) = 0;
  /// A stop: reads no new message, answers those received, then closes 1001 going_away.
  /// Thread-safe: posts to the strand.
  virtual void postDrain() = 0;
};

class WsHub {
 public:
  /// `submit` runs a task on the worker pool, or returns false when the pool is full (shed).
  WsHub(const AsioListenerOptions& options, std::function<bool(std::function<void()>)> submit);

  using Upgrade = boost::beast::http::request<boost::beast::http::string_body>;
  /// Accepts the upgrade on `stream` and runs the session. `hold` is kept for the session's
  /// life (the connection's place in the listener's counters). `already`: bytes read from the
  /// connection behind the upgrade request (frames sent in the same packet); the session reads
  /// them first and takes them out of the buffer.
  void start(boost::beast::tcp_stream stream, Upgrade request, WsBinding binding,
             std::string remoteAddr, std::shared_ptr<void> hold,
             boost::beast::flat_buffer& already);
  void start(boost::beast::ssl_stream<boost::beast::tcp_stream> stream, Upgrade request,
             WsBinding binding, std::string remoteAddr, std::shared_ptr<void> hold,
             boost::beast::flat_buffer& already);

  size_t pushTo(const std::string& key, const std::string& text);
  size_t pushAll(const std::string& text);
  /// A stop: every session drains (WsSessionBase::postDrain); one that opens later is closed
  /// with 1001 going_away at once. Does not wait (the listener waits for the connections).
  void drainAll();

  // Called by the sessions. opened() returns false once drainAll() ran.
  bool opened(WsSessionBase* s, std::weak_ptr<WsSessionBase> w);
  void bound(WsSessionBase* s, const std::string& key);
  void ended(WsSessionBase* s, const std::string& key);
  void countClose(int code);

  const AsioListenerOptions& options;
  const std::function<bool(std::function<void()>)> submit;
  std::atomic<uint64_t> messages{0};
  std::atomic<uint64_t> pushes{0};
  /// Sessions, open still, that a stop has drained: every message received is answered and the
  /// close frame (1001) is written or being written. A stop does not wait for their Defenders'
  /// close replies (thousands of round trips at fleet size).
  std::atomic<size_t> drainedOpen{0};

  size_t open() const;
  std::map<int, uint64_t> closes() const;

 private:
  mutable std::mutex mu_;
  std::unordered_map<WsSessionBase*, std::weak_ptr<WsSessionBase>> all_;
  std::unordered_multimap<std::string, WsSessionBase*> byKey_;
  std::map<int, uint64_t> closes_;
  bool stopping_ = false;
};

}  // namespace dc::channel
