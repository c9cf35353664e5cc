// The yardstick of B1: a bare cpp-httplib POST handler with the defender channel's listener
// settings (thread pool of the same size, TCP_NODELAY, the same keep-alive limits, body limit and
// backlog), answering a fixed reply of the heartbeat reply's size without parsing the body.
//
//   build/release/bench/bare_server --port 38190 --threads 64
#include <httplib.h>
#include <sys/socket.h>

#include <csignal>
#include <iostream>

#include <CLI/CLI.hpp>

namespace {
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
  CLI::App app{"Bare cpp-httplib POST handler (benchmark yardstick)"};
  app.add_option("--port", port, "Port on 127.0.0.1")->capture_default_str();
  app.add_option("--threads", threads, "Worker threads (the defender channel's default: 64)")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  Server server;
  server.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  server.set_tcp_nodelay(true);
  server.set_payload_max_length(256 << 10);
  server.set_keep_alive_max_count(100000);
  server.set_keep_alive_timeout(30);
  server.set_read_timeout(10, 0);
  server.Post("/api/v1/defender/heartbeat", [](const httplib::Request&, httplib::Response& res) {
    // Same reply shape and size as the Console's heartbeat reply.
    res.set_content(
        "{\"hostname\":\"task0000000000000000000000000000\",\"connected\":true,"
        "\"registered\":false,\"intervalSeconds\":30,"
        "\"nextHeartbeatSeconds\":26.412}",
        "application/json");
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
