// The event-driven front of the defender channel (docs/defender-channel.md, "Fronts"): Boost.Asio
// with Boost.Beast for HTTP/1.1 and Asio's OpenSSL streams for TLS. A few I/O threads hold every
// connection — none is tied to a thread for its keep-alive life — and requests run on a small
// worker pool (the handlers wait for the inventory's group commit), their answers posted back to
// the connection's strand.
//
// Per connection:
//  - TLS handshake, then the first request head, each within `headerTimeoutSeconds`; later
//    request heads within `headerTimeoutSeconds` of their first byte; between requests a
//    keep-alive connection may stay idle for `idleTimeoutSeconds`. Any of these expiring closes
//    the connection without an answer (the client sent no complete request to answer).
//  - Bodies within `bodyTimeoutSeconds` (also the bound for writing an answer).
//  - Refusals, each a JSON error (channel/message.h) followed by closing the connection:
//    431 headers_too_large (head beyond `maxHeaderBytes` + 8 KiB for the request line) and
//    too_many_headers; 413 body_too_large (`maxBodyBytes`, never buffered beyond it);
//    411 length_required (POST without Content-Length or chunked framing); 400 bad_request
//    (malformed head, unknown method) and invalid_body (malformed chunked framing); 414
//    uri_too_long (request target beyond 8192 bytes), 400 invalid_header (a header line beyond
//    8192 bytes), 411 for a chunked body on any method but POST — as the cpp-httplib front;
//    429 too_many_connections when the peer address already holds
//    `maxConnectionsPerAddress` connections (answered to the request read on the extra one).
//  - Shedding: a request arriving while more than `maxQueued` wait for a worker is answered
//    503 overloaded with a Retry-After (the connection stays open).
//  - WebSocket (when `webSocket.authorize` is set): a `GET` upgrade at one of `webSocket.paths`
//    is authorized on a worker, then the connection (plain or TLS) becomes a WebSocket session
//    (channel/ws_session.h; docs/defender-channel.md, "WebSocket transport").
//  - HEAD is answered with the head of the handler's answer (its Content-Length, no body);
//    a streamed answer (Response::stream) is written with chunked transfer encoding, one piece
//    at a time as the worker produces it.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "channel/message.h"
#include "common/clock.h"
#include "common/status.h"

namespace dc::channel {

/// Per-connection state bound at a WebSocket upgrade (e.g. the authenticated Defender
/// credential); opaque to the listener, handed to every message of the connection.
using WsBinding = std::shared_ptr<const void>;

/// The answer to a WebSocket upgrade request: a binding (the upgrade proceeds) or a refusal
/// (written as a plain HTTP answer, then the connection is closed).
struct WsUpgrade {
  WsBinding binding;
  std::optional<Response> refusal;
};

/// One WebSocket message, its envelope `{"type", "id", "body"}` already parsed.
struct WsMessage {
  std::string type;        // never empty (a frame without one is closed 1008 missing_type)
  std::string body;        // the JSON text of `body`; "{}" when absent
  std::string remoteAddr;  // the peer's IP address
};

/// What a message gets: a result frame `{"type":"result","id","status","body"}` made of
/// `result` (its status and JSON body; a Retry-After header becomes `retryAfterSeconds`), or —
/// when `closeCode` is set — the connection closed with that code and reason, nothing answered.
struct WsAnswer {
  Response result;
  int closeCode = 0;
  std::string closeReason;
  /// Set on the message that binds the connection to a Defender (its hostname key): pushes for
  /// that key (AsioListener::pushTo) reach this connection from then on.
  std::string bindKey;
};

/// The WebSocket transport. Both functions run on a worker thread and may block.
struct WebSocketOptions {
  /// Decides an upgrade request (its `authorization` and `remoteAddr` are set). Unset: no
  /// WebSocket; upgrade requests go to the request handler like any other request.
  std::function<WsUpgrade(const Request&)> authorize;
  /// Answers one message; `boundKey` is the key the connection was bound to ("" before).
  std::function<WsAnswer(const WsBinding&, const std::string& boundKey, const WsMessage&)> handle;
  std::vector<std::string> paths = {"/", "/api/v1/defender/ws"};
  /// A ping after each period in which the peer sent anything; a connection from which nothing
  /// (no pong, no message) arrived during a whole period after a ping is closed, i.e. after
  /// between one and two periods of silence.
  int pingSeconds = 30;
};

struct AsioListenerOptions {
  std::string name = "defender channel";  // for logs
  std::string host = "0.0.0.0";
  int port = 0;          // 0 picks a free port
  size_t ioThreads = 0;  // threads running the sockets; 0 = one per core
  size_t workers = 8;    // threads running the handler
  size_t maxQueued = 0;  // requests waiting for a worker beyond this get 503; 0 = unbounded
  size_t maxBodyBytes = 1 << 20;
  size_t maxHeaderCount = 100;
  size_t maxHeaderBytes = 32 * 1024;
  int headerTimeoutSeconds = 5;
  int bodyTimeoutSeconds = 10;
  int idleTimeoutSeconds = 120;
  size_t maxConnectionsPerAddress = 0;  // 0 = no cap
  int backlog = 4096;
  /// Seconds for the `Retry-After` of a shed request (default: 5). Runs on an I/O thread.
  std::function<int(const Request&)> shedRetryAfter;
  /// Called on every answer just before it is written — the handler's, shedding's and the
  /// protocol refusals' (with the request as far as it was read: method and path once the head
  /// parsed) — e.g. to add headers. Runs on an I/O thread; must not block.
  std::function<void(const Request&, Response&)> decorate;
  /// HTTPS when set: PEM certificate (chain) and private key files.
  std::string tlsCertFile;
  std::string tlsKeyFile;
  /// Mutual TLS when set: PEM CAs whose client certificates are accepted; clients without one
  /// fail the handshake.
  std::string clientCaFile;
  WebSocketOptions webSocket;
  /// Bound of a stop's drain (stop()), in seconds of `clock`: past it, what has not finished is
  /// cut off.
  int drainSeconds = 5;
  /// The time source of the drain bound; nullptr: the system clock.
  const Clock* clock = nullptr;
};

/// Counters of the listener (gauges are snapshots).
struct AsioListenerLoad {
  size_t connections = 0;           // gauge: open connections
  size_t queued = 0;                // gauge: requests waiting for a worker
  size_t busy = 0;                  // gauge: requests being handled
  uint64_t shed = 0;                // counter: requests answered 503 overloaded
  uint64_t refusedConnections = 0;  // counter: connections answered 429 too_many_connections
  size_t wsSessions = 0;            // gauge: open WebSocket sessions
  uint64_t wsMessages = 0;          // counter: WebSocket messages answered (result frames)
  uint64_t wsPushes = 0;            // counter: push messages sent (settings, removed, backoff)
  /// counter: WebSocket sessions ended, by close code (sent by either side; 1006 when the
  /// connection ended without a close handshake: reset, ping timeout, Console stopped).
  std::map<int, uint64_t> wsCloses;
};

/// Turns a request into its answer; runs on a worker thread, may block (e.g. on a commit).
using RequestHandler = std::function<Response(const Request&)>;

class AsioListener {
 public:
  AsioListener(AsioListenerOptions options, RequestHandler handler);
  ~AsioListener();
  AsioListener(const AsioListener&) = delete;
  AsioListener& operator=(const AsioListener&) = delete;

  /// Binds and starts the I/O threads and the worker pool. Returns the bound port. Errors:
  /// kUnavailable "port_in_use" (or "bind_failed") with the address in the message;
  /// kInvalidArgument "tls_invalid" when the certificate, key or client CA cannot be loaded.
  Result<int> start();
  /// Drains, then joins (docs/defender-channel.md, "Stop"): stops accepting; reads no new
  /// request or message; answers those already received (HTTP with `Connection: close`, then
  /// closed; WebSocket then closed with 1001 going_away); waits until every connection has
  /// ended or `drainSeconds` have passed on `clock`, then closes what is left (running handlers
  /// finish, their answers dropped). Idempotent.
  void stop();
  int port() const;
  AsioListenerLoad load() const;
  /// Sends the text message `text` to every WebSocket session bound to `key` (WsAnswer::bindKey);
  /// returns how many. Thread-safe, never blocks on I/O.
  size_t pushTo(const std::string& key, const std::string& text);
  /// Sends `text` to every open WebSocket session; returns how many. Thread-safe.
  size_t pushAll(const std::string& text);
  bool tls() const { return !options_.tlsCertFile.empty(); }

  struct Impl;

 private:
  AsioListenerOptions options_;
  std::shared_ptr<Impl> impl_;
};

}  // namespace dc::channel
