// One HTTP listener (cpp-httplib) set up the way the Console needs it: TCP_NODELAY on (without it
// every small response waits ~40 ms on delayed ACKs), a bounded request body, a thread pool sized
// on purpose, a real listen backlog, long keep-alive, port 0 for tests; HTTPS (optionally with
// client certificates) when given a certificate and key.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "common/status.h"

namespace httplib {
class Server;
struct Request;
}  // namespace httplib

namespace dc::web {

struct ListenerOptions {
  std::string name = "http";  // for logs: "console" or "defender channel"
  std::string host = "0.0.0.0";
  int port = 0;  // 0 picks a free port
  /// Worker threads. cpp-httplib serves one connection per worker for the life of a keep-alive
  /// connection, so this bounds concurrent connections being served.
  size_t threads = 8;
  size_t maxBodyBytes = 1 << 20;  // larger bodies get 413
  int backlog = 4096;             // pending connections queued by the kernel
  size_t keepAliveMaxRequests = 100000;
  int keepAliveTimeoutSeconds = 30;
  int readTimeoutSeconds = 10;
  /// Admission control: connections waiting for a worker beyond this many are not queued; a
  /// small shedding pool answers their requests at once with 503 "overloaded" (and
  /// `Connection: close`), so the queue and its memory stay bounded. 0 = unbounded.
  size_t maxQueued = 0;
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

}  // namespace dc::web
