// The yardstick of B1: a bare POST handler on the defender channel's own front and settings,
// answering a fixed reply of the heartbeat reply's size without parsing the body or touching
// the inventory, so that Console / bare is what the Console's own work costs on the same stack.
//  - `--front asio` (the Console's default front): channel::AsioListener with the same defaults
//    (I/O threads one per core, the worker pool of `--threads`, limits, timeouts, backlog);
//  - `--front httplib`: cpp-httplib with the same thread pool, TCP_NODELAY, keep-alive limits,
//    body limit and backlog as web/http_listener.cpp.
//
//   build/release/bench/bare_server --port 38190 --threads 64 --front asio
#include <httplib.h>
#include <sys/socket.h>

#include <csignal>
#include <iostream>

#include <CLI/CLI.hpp>

#include "channel/asio_listener.h"

namespace {
// Same reply shape and size as the Console's heartbeat reply.
constexpr const char* kReply =
    "{\"hostname\":\"task0000000000000000000000000000\",\"connected\":true,"
    "\"registered\":false,\"intervalSeconds\":30,"
    "\"nextHeartbeatSeconds\":26.412}";

// cpp-httplib 0.11 compiles its listen backlog in (5); raise it like web/http_listener.cpp does.
class Server final : public httplib::Server {
 public:
  void raiseBacklog(int backlog) { ::listen(svr_sock_.load(), backlog); }
};
httplib::Server* g_server = nullptr;
void onSignal(int) {
  if (g_server) g_server->stop();
}
}  // namespace

int main(int argc, char** argv) {
  int port = 38190;
  size_t threads = 64;
  std::string front = "asio";
  CLI::App app{"Bare POST handler on the defender channel's front (benchmark yardstick)"};
  app.add_option("--port", port, "Port on 127.0.0.1")->capture_default_str();
  app.add_option("--threads", threads, "Worker threads (the defender channel's default: 64)")
      ->capture_default_str();
  app.add_option("--front", front, "HTTP front: asio (the Console's default) or httplib")
      ->check(CLI::IsMember({"asio", "httplib"}))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  if (front == "asio") {
    dc::channel::AsioListenerOptions options;
    options.name = "bare";
    options.host = "127.0.0.1";
    options.port = port;
    options.workers = threads;
    options.maxBodyBytes = 256 << 10;
    dc::channel::AsioListener listener(
        options, [](const dc::channel::Request&) { return dc::channel::jsonResponse(kReply); });
    auto bound = listener.start();
    if (!bound.ok()) {
      std::cerr << "cannot listen on 127.0.0.1:" << port << ": " << bound.error().message << '\n';
      return 1;
    }
    std::cout << "bare server (asio) on 127.0.0.1:" << *bound << " with " << threads << " workers"
              << std::endl;
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, nullptr);
    int sig = 0;
    sigwait(&stop, &sig);
    listener.stop();
    return 0;
  }

  Server server;
  server.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  server.set_tcp_nodelay(true);
  server.set_payload_max_length(256 << 10);
  server.set_keep_alive_max_count(100000);
  server.set_keep_alive_timeout(30);
  server.set_read_timeout(10, 0);
  server.Post("/api/v1/defender/heartbeat", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(kReply, "application/json");
  });
  g_server = &server;
  std::signal(SIGINT, onSignal);
  std::signal(SIGTERM, onSignal);
  if (!server.bind_to_port("127.0.0.1", port)) {
    std::cerr << "cannot listen on 127.0.0.1:" << port << '\n';
    return 1;
  }
  server.raiseBacklog(4096);
  std::cout << "bare server on 127.0.0.1:" << port << " with " << threads << " threads"
            << std::endl;
  server.listen_after_bind();
  return 0;
}
