#include "web/http_listener.h"

#include "common/thread_priority.h"
#include "web/http_errors.h"

#include <httplib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <string_view>
#include <vector>

#include <spdlog/spdlog.h>

namespace dc::web {

namespace {

// cpp-httplib 0.11 compiles its listen backlog in (5); Linux lets a second listen() on the
// bound socket raise it, which is what this subclass does after binding. It also carries the
// body limit for postBounded(). Works the same for plain HTTP (httplib::Server) and HTTPS
// (httplib::SSLServer).
struct BodyLimited {
  virtual ~BodyLimited() = default;
  size_t maxBodyBytes = 0;
};

template <typename Base>
class Server final : public Base, public BodyLimited {
 public:
  template <typename... Args>
  explicit Server(size_t maxBody, Args&&... args) : Base(std::forward<Args>(args)...) {
    maxBodyBytes = maxBody;
  }
  void raiseBacklog(int backlog) {
    const auto sock = this->svr_sock_.load();
    if (sock != INVALID_SOCKET) ::listen(sock, backlog);
  }
};

// Set on the threads of the shedding pool: requests they serve are answered 503 at once.
thread_local bool tShedding = false;

}  // namespace

struct HttpListener::Admission {
  std::atomic<size_t> queued{0};
  std::atomic<size_t> busy{0};
  std::atomic<uint64_t> shed{0};
};

namespace {

// httplib's ThreadPool queues without bound. This pool keeps at most `maxQueued` connections
// waiting; beyond that a connection goes to a small shedding pool whose requests are answered
// 503 by the pre-routing handler, without touching the inventory.
class BoundedPool final : public httplib::TaskQueue {
 public:
  BoundedPool(size_t threads, size_t maxQueued, int nice,
              std::shared_ptr<HttpListener::Admission> a)
      : maxQueued_(maxQueued), admission_(std::move(a)) {
    for (size_t i = 0; i < threads; ++i)
      threads_.emplace_back([this, nice] {
        if (!setThisThreadNice(nice))
          spdlog::warn("could not lower the priority of a worker thread: {}", std::strerror(errno));
        run(work_, false);
      });
    if (maxQueued_ > 0)
      for (int i = 0; i < 2; ++i) threads_.emplace_back([this] { run(shedding_, true); });
  }
  ~BoundedPool() override { shutdown(); }

  void enqueue(std::function<void()> fn) override {
    {
      std::lock_guard lock(mutex_);
      if (maxQueued_ > 0 && work_.size() >= maxQueued_) {
        shedding_.push_back(std::move(fn));
      } else {
        work_.push_back(std::move(fn));
        admission_->queued = work_.size();
      }
    }
    cv_.notify_all();
  }

  void shutdown() override {
    {
      std::lock_guard lock(mutex_);
      if (stopping_) return;
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_)
      if (t.joinable()) t.join();
  }

 private:
  void run(std::deque<std::function<void()>>& queue, bool shedding) {
    tShedding = shedding;
    for (;;) {
      std::function<void()> fn;
      {
        std::unique_lock lock(mutex_);
        cv_.wait(lock, [&] { return stopping_ || !queue.empty(); });
        if (queue.empty()) return;  // stopping and drained
        fn = std::move(queue.front());
        queue.pop_front();
        if (!shedding) admission_->queued = work_.size();
      }
      if (!shedding) ++admission_->busy;
      fn();
      if (!shedding) --admission_->busy;
    }
  }

  const size_t maxQueued_;
  std::shared_ptr<HttpListener::Admission> admission_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> work_;
  std::deque<std::function<void()>> shedding_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

std::unique_ptr<httplib::Server> makeServer(const ListenerOptions& o,
                                            std::function<void(int)>& raiseBacklog) {
  if (o.tlsCertFile.empty()) {
    auto s = std::make_unique<Server<httplib::Server>>(o.maxBodyBytes);
    raiseBacklog = [p = s.get()](int b) { p->raiseBacklog(b); };
    return s;
  }
  auto s = std::make_unique<Server<httplib::SSLServer>>(
      o.maxBodyBytes, o.tlsCertFile.c_str(), o.tlsKeyFile.c_str(),
      o.clientCaFile.empty() ? nullptr : o.clientCaFile.c_str());
  raiseBacklog = [p = s.get()](int b) { p->raiseBacklog(b); };
  return s;
}

Error bodyTooLarge(size_t limit) {
  return Error{ErrorKind::kTooLarge, "body_too_large",
               "request body exceeds this listener's limit of " + std::to_string(limit) + " bytes",
               "body"};
}

bool isChunked(const httplib::Request& req) {
  // Transfer-Encoding is a list; chunked, when present, is last (RFC 9112 §6.1).
  std::string te = req.get_header_value("Transfer-Encoding");
  for (auto& c : te) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return te.find("chunked") != std::string::npos;
}

/// Refusals that need only the request head: header count and size, missing body framing.
bool refuseHead(const httplib::Request& req, httplib::Response& res, const ListenerOptions& o) {
  if (req.headers.size() > o.maxHeaderCount) {
    sendError(res,
              Error::invalid("too_many_headers", "headers",
                             "the request has " + std::to_string(req.headers.size()) +
                                 " headers; at most " + std::to_string(o.maxHeaderCount)),
              431);
    return true;
  }
  size_t bytes = 0;
  for (const auto& [name, value] : req.headers) bytes += name.size() + value.size() + 4;
  if (bytes > o.maxHeaderBytes) {
    sendError(res,
              Error::invalid("headers_too_large", "headers",
                             "the request headers take " + std::to_string(bytes) +
                                 " bytes; at most " + std::to_string(o.maxHeaderBytes)),
              431);
    return true;
  }
  // Only POST routes read their body through postBounded(); any other method with a chunked
  // body would be read whole into memory by the library (its limit covers Content-Length only).
  if (isChunked(req) && req.method != "POST") {
    sendError(res,
              Error::invalid("length_required", "Transfer-Encoding",
                             "chunked bodies are accepted on POST only; send " + req.method +
                                 " with Content-Length"),
              411);
    return true;
  }
  if ((req.method == "POST" || req.method == "PUT" || req.method == "PATCH") &&
      !req.has_header("Content-Length") && !isChunked(req)) {
    sendError(res,
              Error::invalid("length_required", "Content-Length",
                             "a " + req.method +
                                 " request needs Content-Length (or chunked transfer encoding)"),
              411);
    return true;
  }
  return false;
}

/// Drops the `br` coding from Accept-Encoding so that the library answers with gzip (or
/// uncompressed). cpp-httplib 0.11 prefers Brotli whenever the header merely contains "br" and
/// compresses at Brotli's default quality (11, its slowest): a 250-row list took 423 ms instead
/// of 10 ms (docs/benchmarks.md, "Compressed responses"). Its gzip runs at zlib's default
/// level, which costs about a millisecond for the same body. The library's pre-routing handler
/// sees the request as const, but the object is the connection's own non-const Request that the
/// library later reads to pick the coding, so editing its headers here is well defined.
void dropBrotli(const httplib::Request& req) {
  auto& headers = const_cast<httplib::Request&>(req).headers;
  auto [first, last] = headers.equal_range("Accept-Encoding");
  for (auto it = first; it != last; ++it) {
    std::string kept;
    std::string_view rest = it->second;
    while (!rest.empty()) {
      const size_t comma = rest.find(',');
      std::string_view token = rest.substr(0, comma);
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
      const size_t start = token.find_first_not_of(" \t");
      if (start == std::string_view::npos) continue;
      token.remove_prefix(start);
      std::string_view coding = token.substr(0, token.find_first_of(" \t;"));
      if (coding.size() == 2 && std::tolower(static_cast<unsigned char>(coding[0])) == 'b' &&
          std::tolower(static_cast<unsigned char>(coding[1])) == 'r')
        continue;
      if (!kept.empty()) kept += ", ";
      kept += token;
    }
    it->second = std::move(kept);
  }
}

}  // namespace

void postBounded(httplib::Server& server, const std::string& pattern, PostHandler handler) {
  const auto* own = dynamic_cast<const BodyLimited*>(&server);
  const size_t limit = own ? own->maxBodyBytes : ListenerOptions{}.maxBodyBytes;
  server.Post(pattern, [limit, handler = std::move(handler)](const httplib::Request& req,
                                                             httplib::Response& res,
                                                             const httplib::ContentReader& read) {
    std::string body;
    bool tooLarge = false;
    // Past the limit nothing more is buffered, but the rest is still read and dropped: the
    // library offers a handler no way to close the connection, and stopping mid-body would
    // leave the remaining bytes to be parsed as further requests on this connection.
    const bool complete = read([&](const char* data, size_t n) {
      if (tooLarge || n > limit - body.size()) {
        tooLarge = true;
        body.clear();
        body.shrink_to_fit();
        return true;
      }
      body.append(data, n);
      return true;
    });
    // 413 from the library: Content-Length above the limit, refused before reading the body.
    if (tooLarge || res.status == 413) return sendError(res, bodyTooLarge(limit));
    if (!complete)
      return sendError(res, Error::invalid("invalid_body", "body",
                                           "the request body could not be read: its chunked "
                                           "encoding is malformed or it ended early"));
    httplib::Request whole = req;
    whole.body = std::move(body);
    handler(whole, res);
  });
}

HttpListener::HttpListener(ListenerOptions options)
    : options_(std::move(options)),
      admission_(std::make_shared<Admission>()),
      server_(makeServer(options_, raiseBacklog_)) {
  const size_t threads = options_.threads;
  const size_t maxQueued = options_.maxQueued;
  const int nice = options_.workerNice;
  server_->new_task_queue = [threads, maxQueued, nice, a = admission_] {
    return new BoundedPool(threads, maxQueued, nice, a);
  };
  server_->set_tcp_nodelay(true);
  server_->set_payload_max_length(options_.maxBodyBytes);
  // The pre-routing handler runs once the head is read and before any body byte is: the place
  // for refusals that need only the head, and for shedding. (cpp-httplib 0.11 enforces the
  // payload limit itself only for Content-Length bodies; chunked bodies are bounded by
  // postBounded().)
  server_->set_pre_routing_handler(
      [o = options_, a = admission_](const httplib::Request& req, httplib::Response& res) {
        if (tShedding) {
          ++a->shed;
          Error e{ErrorKind::kUnavailable,
                  "overloaded",
                  "the Console is beyond its capacity; retry after the Retry-After delay",
                  {}};
          e.retryAfterSeconds = o.shedRetryAfter ? o.shedRetryAfter(req) : 5;
          sendError(res, e);
          res.set_header("Connection", "close");
          return httplib::Server::HandlerResponse::Handled;
        }
        dropBrotli(req);
        return refuseHead(req, res, o) ? httplib::Server::HandlerResponse::Handled
                                       : httplib::Server::HandlerResponse::Unhandled;
      });
  server_->set_keep_alive_max_count(options_.keepAliveMaxRequests);
  server_->set_keep_alive_timeout(options_.keepAliveTimeoutSeconds);
  server_->set_read_timeout(options_.readTimeoutSeconds, 0);
  server_->set_socket_options([](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
}

HttpListener::~HttpListener() {
  stop();
}

ListenerLoad HttpListener::load() const {
  return {admission_->queued.load(), admission_->busy.load(), admission_->shed.load()};
}

httplib::Server& HttpListener::server() {
  return *server_;
}

Result<int> HttpListener::start() {
  if (!server_->is_valid())
    return Error{
        ErrorKind::kInvalidArgument, "tls_invalid",
        options_.name + ": cannot load the TLS certificate '" + options_.tlsCertFile + "', key '" +
            options_.tlsKeyFile + "'" +
            (options_.clientCaFile.empty() ? std::string()
                                           : " or client CA '" + options_.clientCaFile + "'"),
        "tls"};
  int port = options_.port;
  errno = 0;
  if (port == 0) {
    port = server_->bind_to_any_port(options_.host);
    if (port < 0) port = 0;
  } else if (!server_->bind_to_port(options_.host, port)) {
    port = 0;
  }
  if (port == 0) {
    const int err = errno;
    const std::string where = options_.host + ":" + std::to_string(options_.port);
    if (err == EADDRINUSE)
      return Error{ErrorKind::kUnavailable, "port_in_use",
                   options_.name + ": " + where + " is already in use", "port"};
    return Error{ErrorKind::kUnavailable, "bind_failed",
                 options_.name + ": cannot listen on " + where +
                     (err ? std::string(" (") + std::strerror(err) + ")" : std::string()),
                 "port"};
  }
  raiseBacklog_(options_.backlog);
  port_ = port;
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  return port;
}

void HttpListener::stop() {
  if (!thread_.joinable()) return;
  // stop() is a no-op until the serving thread has entered its accept loop; wait for it
  // (bounded), or a stop right after start would leave the thread accepting for ever.
  for (int i = 0; i < 5000 && !server_->is_running(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  server_->stop();
  thread_.join();
}

}  // namespace dc::web
