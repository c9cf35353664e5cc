#include "web/http_listener.h"

#include "web/http_errors.h"

#include <httplib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>

#include <spdlog/spdlog.h>

namespace dc::web {

namespace {

// cpp-httplib 0.11 compiles its listen backlog in (5); Linux lets a second listen() on the
// bound socket raise it, which is what this subclass does after binding. It also carries the
// body limit for postBounded().
class Server final : public httplib::Server {
 public:
  explicit Server(size_t maxBodyBytes) : maxBodyBytes_(maxBodyBytes) {}
  void raiseBacklog(int backlog) {
    const auto sock = svr_sock_.load();
    if (sock != INVALID_SOCKET) ::listen(sock, backlog);
  }
  size_t maxBodyBytes() const { return maxBodyBytes_; }

 private:
  size_t maxBodyBytes_;
};

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

}  // namespace

void postBounded(httplib::Server& server, const std::string& pattern, PostHandler handler) {
  const auto* own = dynamic_cast<const Server*>(&server);
  const size_t limit = own ? own->maxBodyBytes() : ListenerOptions{}.maxBodyBytes;
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
    : options_(std::move(options)), server_(std::make_unique<Server>(options_.maxBodyBytes)) {
  const size_t threads = options_.threads;
  server_->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  server_->set_tcp_nodelay(true);
  server_->set_payload_max_length(options_.maxBodyBytes);
  // The pre-routing handler runs once the head is read and before any body byte is: the place
  // for refusals that need only the head. (cpp-httplib 0.11 enforces the payload limit itself
  // only for Content-Length bodies; chunked bodies are bounded by postBounded().)
  server_->set_pre_routing_handler(
      [o = options_](const httplib::Request& req, httplib::Response& res) {
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

httplib::Server& HttpListener::server() {
  return *server_;
}

Result<int> HttpListener::start() {
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
  static_cast<Server&>(*server_).raiseBacklog(options_.backlog);
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
