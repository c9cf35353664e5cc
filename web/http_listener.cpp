#include "web/http_listener.h"

#include "web/http_errors.h"

#include <httplib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include <spdlog/spdlog.h>

namespace dc::web {

namespace {

// cpp-httplib 0.11 compiles its listen backlog in (5); Linux lets a second listen() on the
// bound socket raise it, which is what this subclass does after binding.
class Server final : public httplib::Server {
 public:
  void raiseBacklog(int backlog) {
    const auto sock = svr_sock_.load();
    if (sock != INVALID_SOCKET) ::listen(sock, backlog);
  }
};

}  // namespace

HttpListener::HttpListener(ListenerOptions options)
    : options_(std::move(options)), server_(std::make_unique<Server>()) {
  const size_t threads = options_.threads;
  server_->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  server_->set_tcp_nodelay(true);
  server_->set_payload_max_length(options_.maxBodyBytes);
  // cpp-httplib 0.11 enforces the payload limit only for Content-Length bodies; a chunked body
  // of any size reaches the router, so it is refused here before any handler sees it.
  const size_t limit = options_.maxBodyBytes;
  server_->set_pre_routing_handler([limit](const httplib::Request& req, httplib::Response& res) {
    if (req.body.size() <= limit) return httplib::Server::HandlerResponse::Unhandled;
    sendError(res, Error{ErrorKind::kTooLarge, "body_too_large",
                         "request body exceeds this listener's limit of " + std::to_string(limit) +
                             " bytes",
                         "body"});
    return httplib::Server::HandlerResponse::Handled;
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
