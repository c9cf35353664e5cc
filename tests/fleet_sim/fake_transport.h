// A scripted Transport for unit tests: records every request and answers with `reply`.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "tools/fleet_sim/transport.h"

namespace dc::sim::test {

struct Request {
  std::string path;
  std::string body;
};

class FakeTransport final : public Transport {
 public:
  /// Default reply: 200 with a 30 s heartbeat interval.
  std::function<Response(const Request&)> reply = [](const Request& r) {
    Response out;
    out.status = 200;
    out.body =
        r.path == "/api/v1/defender/heartbeat"
            ? R"({"connected":true,"registered":false,"intervalSeconds":30,"nextHeartbeatSeconds":30})"
            : R"({"accepted":1})";
    return out;
  };
  std::vector<Request> requests;

  Response post(std::string_view path, const std::string& body) override {
    requests.push_back({std::string(path), body});
    return reply(requests.back());
  }

  size_t count(std::string_view path) const {
    size_t n = 0;
    for (const auto& r : requests) n += r.path == path ? 1 : 0;
    return n;
  }
};

}  // namespace dc::sim::test
