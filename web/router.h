// One router for the Console listener, whichever front serves it (web/console_front.h): routes
// are (method, regular expression over the decoded path) → handler on web::Request/Response
// (web/http_types.h), tried in the order they were added, the first whose pattern matches the
// whole path answering. The same contract as the cpp-httplib server the Console was first
// written on, so that answers do not depend on the front:
//  - GET and HEAD first look for a static file under a mount point (`/` → `index.html`;
//    Content-Type from the extension; paths leaving the directory are not served); then routes.
//    HEAD is routed as GET; the front sends the head only.
//  - No route for the method and path: 404 not_found (field path), for every method.
//  - A handler that throws: 500 internal, the exception logged.
//  - A handler that sets an error status (>= 400) without a body: a JSON error `http_error`.
//  - The post-routing handler runs on every answer (the fronts also call it for their own
//    protocol refusals, through postRouting()).
#pragma once

#include <functional>
#include <regex>
#include <string>
#include <vector>

#include "web/http_types.h"

namespace dc::web {

using Handler = std::function<void(const Request&, Response&)>;

class Router {
 public:
  /// Adds a route; `pattern` must match the whole decoded path (std::regex, ECMAScript); its
  /// groups are the handler's `req.matches`. Throws std::regex_error on a malformed pattern.
  void add(const std::string& method, const std::string& pattern, Handler handler);
  void Get(const std::string& pattern, Handler h) { add("GET", pattern, std::move(h)); }
  void Post(const std::string& pattern, Handler h) { add("POST", pattern, std::move(h)); }
  void Put(const std::string& pattern, Handler h) { add("PUT", pattern, std::move(h)); }
  void Delete(const std::string& pattern, Handler h) { add("DELETE", pattern, std::move(h)); }
  void Patch(const std::string& pattern, Handler h) { add("PATCH", pattern, std::move(h)); }

  /// Serves the files under directory `dir` at `mount` (e.g. "/"). False when `dir` is not a
  /// directory (nothing is mounted).
  bool set_mount_point(const std::string& mount, const std::string& dir);
  void set_post_routing_handler(Handler handler) { postRouting_ = std::move(handler); }

  /// Answers `req` into `res` (status, headers, body or content provider): a static file, a
  /// route, or an error as described above; then the post-routing handler unless
  /// `runPostRouting` is false (a front that calls postRouting() itself). Thread-safe once the
  /// routes are added; may block as long as the handler does.
  void handle(Request& req, Response& res, bool runPostRouting = true) const;
  /// The post-routing handler alone (no-op when none is set).
  void postRouting(const Request& req, Response& res) const;

 private:
  struct Route {
    std::string method;
    std::regex pattern;
    Handler handler;
  };
  struct Mount {
    std::string prefix;
    std::string dir;
  };
  bool serveFile(const Request& req, Response& res) const;
  bool dispatch(Request& req, Response& res) const;

  std::vector<Route> routes_;
  std::vector<Mount> mounts_;
  Handler postRouting_;
};

/// The Content-Type of a static file, from its extension (cpp-httplib's table: `.html`
/// text/html, `.js` text/javascript, `.css` text/css, `.svg` image/svg+xml, `.json`
/// application/json, …); "" when unknown (the front then sends text/plain).
std::string contentTypeOfFile(const std::string& path);

/// Whether a body of `contentType` is worth compressing (cpp-httplib's rule: text/* but
/// text/event-stream, image/svg+xml, application/javascript, application/json, application/xml,
/// application/xhtml+xml).
bool compressible(const std::string& contentType);

/// Percent-decodes `text` (invalid escapes stay as they are); `plusIsSpace` for query strings.
std::string decodeUrl(std::string_view text, bool plusIsSpace);

/// Parses a query string ("a=1&b=x+y") into `params`, names and values decoded.
void parseQuery(std::string_view query, Params& params);

}  // namespace dc::web
