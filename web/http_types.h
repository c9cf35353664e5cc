// The Console API's own small HTTP request and response types, so that no route depends on an
// HTTP library: both fronts of the Console listener (web/console_front.h: cpp-httplib, and the
// event-driven channel/asio_listener.h) convert to and from them and call one Router
// (web/router.h). The members and methods mirror the subset of cpp-httplib's API the routes use
// (same names, same meaning), so that moving a route from httplib::Request/Response is a change
// of type only.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <regex>
#include <string>
#include <string_view>
#include <utility>

namespace dc::web {

/// Header names compare without regard to case (RFC 9110 §5.1), as httplib::Headers.
struct CaseInsensitiveLess {
  bool operator()(std::string_view a, std::string_view b) const;
};
using Headers = std::multimap<std::string, std::string, CaseInsensitiveLess>;
/// Query parameters, decoded (`+` is a space), in request order per name.
using Params = std::multimap<std::string, std::string>;

struct Request {
  std::string method;  // "GET", "POST", …; a HEAD request is routed as GET
  /// The path, percent-decoded (`%2F` is `/`; `+` stays `+`), without the query string.
  std::string path;
  Headers headers;
  Params params;
  std::string body;
  std::string remote_addr;  // the peer's IP address, e.g. "127.0.0.1"
  int remote_port = 0;
  /// The matched route's pattern groups over `path` (set by the Router; they point into `path`,
  /// so a copied Request must not use them).
  std::smatch matches;

  bool has_header(const std::string& key) const;
  /// The `id`-th value of header `key`, "" when absent.
  std::string get_header_value(const std::string& key, size_t id = 0) const;
  size_t get_header_value_count(const std::string& key) const;
  bool has_param(const std::string& key) const;
  /// The `id`-th value of parameter `key`, "" when absent.
  std::string get_param_value(const std::string& key, size_t id = 0) const;
  size_t get_param_value_count(const std::string& key) const;
};

/// Where a streaming body's pieces go (httplib::DataSink's members).
struct DataSink {
  /// Appends `n` bytes to the body; false when the connection is gone.
  std::function<bool(const char* data, size_t n)> write;
  /// The body is complete.
  std::function<void()> done;
  /// False when the connection is gone (the provider should stop).
  std::function<bool()> is_writable;
};

/// Produces a streaming body: called again and again (`offset` = bytes produced so far), each
/// call writing the next piece to the sink and calling `done()` after the last; false aborts
/// the transfer (the client sees a cut body). Runs on a worker thread, never concurrently with
/// itself; the fronts call it again only once the previous piece is on its way, so a body is
/// never buffered whole.
using ContentProviderWithoutLength = std::function<bool(size_t offset, DataSink& sink)>;

struct Response {
  int status = -1;  // -1 until set: 200 once routed, as httplib
  Headers headers;
  std::string body;
  std::string location;  // of a redirect
  /// Set by set_chunked_content_provider(): the body is streamed, `body` stays empty.
  ContentProviderWithoutLength content_provider_;

  bool has_header(const std::string& key) const;
  std::string get_header_value(const std::string& key, size_t id = 0) const;
  /// Adds a header (as httplib, it does not replace one of the same name); values with CR or
  /// LF are ignored.
  void set_header(const std::string& key, const std::string& value);
  void set_content(std::string body, const std::string& content_type);
  void set_content(const char* data, size_t n, const std::string& content_type);
  /// A body of unknown length, sent with chunked transfer encoding as `provider` produces it.
  void set_chunked_content_provider(const std::string& content_type,
                                    ContentProviderWithoutLength provider);
  /// A redirect to `url` (302 unless `status` is another 3xx).
  void set_redirect(const std::string& url, int status = 302);
};

}  // namespace dc::web
