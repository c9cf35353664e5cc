// One HTTP listener (cpp-httplib) set up the way the Console needs it: TCP_NODELAY on (without it
// every small response waits ~40 ms on delayed ACKs), bounded request heads and bodies, a thread
// pool sized on purpose, a real listen backlog, long keep-alive, port 0 for tests; HTTPS
// (optionally with client certificates) when given a certificate and key.
//
// Protocol limits (docs/security.md, "Hostile input"), each answered with a JSON error:
//  - request line longer than 8192 bytes: 414 uri_too_long (cpp-httplib 0.11 compiles this
//    limit, CPPHTTPLIB_REQUEST_URI_MAX_LENGTH, into the shared library);
//  - a header line longer than 8192 bytes (CPPHTTPLIB_HEADER_MAX_LENGTH, also compiled in) or
//    not parseable: 400 invalid_header; a malformed request line: 400 bad_request;
//  - more than `maxHeaderCount` headers or `maxHeaderBytes` of them: 431 (checked once the
//    library has read the head; each line is bounded by the library, their number is not);
//  - POST/PUT/PATCH without Content-Length or chunked framing: 411 length_required (the library
//    would otherwise read until the client closes);
//  - a body above `maxBodyBytes`: 413 body_too_large, never buffered beyond the limit: with
//    Content-Length the library skips the body; chunked bodies on routes registered with
//    postBounded() stop being buffered at the limit (the rest is read and dropped so that the
//    connection stays in step; the answer follows the end of the body).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "common/status.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace dc::web {

struct ListenerOptions {
  std::string name = "http";  // for logs: "console" or "defender channel"
  std::string host = "0.0.0.0";
  int port = 0;  // 0 picks a free port
  /// Worker threads. cpp-httplib serves one connection per worker for the life of a keep-alive
  /// connection, so this bounds concurrent connections being served.
  size_t threads = 8;
  size_t maxBodyBytes = 1 << 20;      // larger bodies get 413
  size_t maxHeaderCount = 100;        // more request headers get 431 too_many_headers
  size_t maxHeaderBytes = 32 * 1024;  // names + values + 4 per header; more gets 431
  int backlog = 4096;                 // pending connections queued by the kernel
  size_t keepAliveMaxRequests = 100000;
  int keepAliveTimeoutSeconds = 30;
  int readTimeoutSeconds = 10;
  /// Admission control: connections waiting for a worker beyond this many are not queued; a
  /// small shedding pool answers their requests at once with 503 "overloaded" (and
  /// `Connection: close`), so the queue and its memory stay bounded. 0 = unbounded.
  size_t maxQueued = 0;
  /// Nice value (Linux, 0..19) of the worker threads: > 0 lets the Console's own threads — the
  /// write-behind flusher, the sweep, the Console API — run first when this listener saturates
  /// the CPU, so persistence keeps up instead of being starved by request handling.
  int workerNice = 0;
  /// Seconds for the `Retry-After` of a shed request (default: 5).
  std::function<int(const httplib::Request&)> shedRetryAfter;
  /// HTTPS when set: PEM certificate (chain) and private key files (httplib::SSLServer).
  std::string tlsCertFile;
  std::string tlsKeyFile;
  /// Mutual TLS when set (HTTPS only): PEM file of the CAs whose client certificates are
  /// accepted; clients without one fail the handshake.
  std::string clientCaFile;
};

/// Counters of one listener's admission control.
struct ListenerLoad {
  size_t queued = 0;  // gauge: connections waiting for a worker
  size_t busy = 0;    // gauge: connections being served
  uint64_t shed = 0;  // counter: requests answered 503 "overloaded" without a worker
};

class HttpListener {
 public:
  explicit HttpListener(ListenerOptions options);
  ~HttpListener();
  HttpListener(const HttpListener&) = delete;
  HttpListener& operator=(const HttpListener&) = delete;

  /// Register routes here before start().
  httplib::Server& server();

  /// Binds and starts serving on a background thread. Returns the bound port. Errors:
  /// kUnavailable "port_in_use" (or "bind_failed") with the address in the message;
  /// kInvalidArgument "tls_invalid" when the certificate, key or client CA cannot be loaded.
  Result<int> start();
  /// Stops accepting, finishes in-flight requests and joins. Idempotent.
  void stop();
  int port() const { return port_; }
  /// Thread-safe snapshot of the admission counters.
  ListenerLoad load() const;
  struct Admission;  // shared with the worker pool, which httplib owns
  bool tls() const { return !options_.tlsCertFile.empty(); }

 private:
  ListenerOptions options_;
  std::shared_ptr<Admission> admission_;
  std::function<void(int)> raiseBacklog_;  // before server_: makeServer sets it
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
};

/// Registers `handler` for POST `pattern`, with the body read under the listener's
/// `maxBodyBytes` as it arrives, chunked bodies included: once past the limit nothing more is
/// kept (the rest is read and dropped) and the answer is 413 body_too_large; chunked framing that
/// is malformed or cut short is 400 invalid_body. The handler sees the whole body in `req.body`.
/// For a server not created by an HttpListener the limit is ListenerOptions{}.maxBodyBytes.
using PostHandler = std::function<void(const httplib::Request&, httplib::Response&)>;
void postBounded(httplib::Server& server, const std::string& pattern, PostHandler handler);

}  // namespace dc::web
