// cpp-httplib implementation of Transport. The only file of the simulator that includes httplib.
#include <httplib.h>

#include <cmath>
#include <cstdlib>

#include "tools/fleet_sim/transport.h"

namespace dc::sim {
namespace {

std::string stripSlash(std::string url) {
  if (!url.empty() && url.back() == '/') url.pop_back();
  return url;
}

void setTimeout(httplib::Client& c, double seconds, bool connect) {
  auto sec = static_cast<time_t>(seconds);
  auto usec = static_cast<time_t>((seconds - static_cast<double>(sec)) * 1e6);
  if (connect) {
    c.set_connection_timeout(sec, usec);
  } else {
    c.set_read_timeout(sec, usec);
    c.set_write_timeout(sec, usec);
  }
}

class HttpTransport final : public Transport {
 public:
  explicit HttpTransport(const HttpTransportOptions& o) {
    std::string url = stripSlash(o.consoleUrl);
    if (!o.credential.empty()) headers_.emplace("Authorization", "Bearer " + o.credential);
    for (int i = 0; i < std::max(1, o.connections); ++i) {
      auto c = std::make_unique<httplib::Client>(url);
      c->set_keep_alive(true);
      if (o.insecure) c->enable_server_certificate_verification(false);
      if (!o.caCertFile.empty()) c->set_ca_cert_path(o.caCertFile.c_str());
      c->set_tcp_nodelay(true);
      setTimeout(*c, o.connectTimeoutSeconds, true);
      setTimeout(*c, o.readTimeoutSeconds, false);
      clients_.push_back(std::move(c));
    }
  }

  Response post(std::string_view path, const std::string& body) override {
    httplib::Client& c = *clients_[next_];
    next_ = (next_ + 1) % clients_.size();
    Response r;
    auto res = c.Post(std::string(path).c_str(), headers_, body, "application/json");
    if (!res) {
      r.error = httplib::to_string(res.error());
      return r;
    }
    r.status = res->status;
    r.body = std::move(res->body);
    if (res->has_header("Retry-After")) {
      r.retryAfterSeconds = parseRetryAfter(res->get_header_value("Retry-After"));
    }
    return r;
  }

 private:
  std::vector<std::unique_ptr<httplib::Client>> clients_;
  size_t next_ = 0;
  httplib::Headers headers_;
};

}  // namespace

Status validateConsoleUrl(std::string_view url) {
  std::string_view rest;
  if (url.starts_with("http://")) {
    rest = url.substr(7);
  } else if (url.starts_with("https://")) {
    rest = url.substr(8);
  } else {
    return Error::invalid("invalid_option", "console",
                          "--console must start with http:// or https://");
  }
  if (rest.ends_with('/')) rest.remove_suffix(1);
  if (rest.empty() || rest.find_first_of("/?#@ ") != std::string_view::npos) {
    return Error::invalid("invalid_option", "console",
                          "--console must be http[s]://host[:port] with no path");
  }
  return Status::success();
}

std::unique_ptr<Transport> makeHttpTransport(const HttpTransportOptions& options) {
  return std::make_unique<HttpTransport>(options);
}

std::optional<double> parseRetryAfter(std::string_view value) {
  while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  while (!value.empty() && value.back() == ' ') value.remove_suffix(1);
  if (value.empty() || value.size() > 32) return std::nullopt;
  for (char c : value) {
    if (!((c >= '0' && c <= '9') || c == '.')) return std::nullopt;
  }
  std::string text(value);
  char* end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size() || !std::isfinite(v) || v < 0) return std::nullopt;
  return v;
}

}  // namespace dc::sim
