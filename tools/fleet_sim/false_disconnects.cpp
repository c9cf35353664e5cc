// The false-disconnect check of the per-Defender engine (connection_engine.h): asks the Console
// API which Defenders it shows disconnected. cpp-httplib, like the simulator's HTTP transport.
#include <httplib.h>

#include <algorithm>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include "tools/fleet_sim/connection_engine.h"

namespace dc::sim {

std::string basicAuthorization(const std::string& user, const std::string& password) {
  return httplib::make_basic_authentication_header(user, password).second;
}

Result<FalseDisconnectCheck> checkFalseDisconnects(const std::string& apiUrl,
                                                   const std::string& authorization, bool insecure,
                                                   std::vector<std::string> alive) {
  std::string base = apiUrl;
  if (!base.empty() && base.back() == '/') base.pop_back();
  httplib::Client client(base);
  if (insecure) client.enable_server_certificate_verification(false);
  client.set_connection_timeout(10);
  client.set_read_timeout(60);
  httplib::Headers headers;
  if (!authorization.empty()) headers.emplace("Authorization", authorization);

  FalseDisconnectCheck out;
  out.checked = alive.size();
  std::unordered_set<std::string> ours(std::make_move_iterator(alive.begin()),
                                       std::make_move_iterator(alive.end()));
  std::string cursor = "start";
  while (!cursor.empty()) {
    const std::string path = "/api/v1/defenders/names?connected=false&limit=250&cursor=" +
                             httplib::detail::encode_query_param(cursor);
    auto res = client.Get(path, headers);
    if (!res) {
      return Error::invalid("api_error", "api",
                            "GET " + base + path + ": " + httplib::to_string(res.error()));
    }
    if (res->status != 200) {
      return Error::invalid("api_error", "api",
                            "GET " + base + path + ": HTTP " + std::to_string(res->status) + " " +
                                res->body.substr(0, 200));
    }
    const auto names = nlohmann::json::parse(res->body, nullptr, false);
    if (!names.is_array())
      return Error::invalid("api_error", "api", "GET " + base + path + ": not a JSON array");
    for (const auto& n : names) {
      if (!n.is_string()) continue;
      if (ours.count(n.get<std::string>())) {
        ++out.shownDisconnected;
        if (out.sample.size() < 10) out.sample.push_back(n.get<std::string>());
      }
    }
    cursor = res->has_header("Next-Cursor") ? res->get_header_value("Next-Cursor") : "";
  }
  return out;
}

}  // namespace dc::sim
