#include "web/router.h"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <sstream>

#include <spdlog/spdlog.h>

#include "web/http_errors.h"

namespace dc::web {

namespace {

char lower(char c) {
  return static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
}

bool hasCrLf(const std::string& s) {
  return s.find_first_of("\r\n") != std::string::npos;
}

/// The path below a mount point stays inside it: no segment climbs above the top (cpp-httplib's
/// is_valid_path), no backslash or NUL.
bool staysInside(std::string_view sub) {
  int level = 0;
  size_t i = 0;
  while (i < sub.size()) {
    while (i < sub.size() && sub[i] == '/') ++i;
    const size_t start = i;
    while (i < sub.size() && sub[i] != '/') ++i;
    const std::string_view segment = sub.substr(start, i - start);
    if (segment.empty() || segment == ".") continue;
    if (segment.find('\\') != std::string_view::npos ||
        segment.find('\0') != std::string_view::npos)
      return false;
    if (segment == "..") {
      if (--level < 0) return false;
    } else {
      ++level;
    }
  }
  return true;
}

bool isFile(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = lower(c);
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

}  // namespace

bool CaseInsensitiveLess::operator()(std::string_view a, std::string_view b) const {
  return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end(),
                                      [](char x, char y) { return lower(x) < lower(y); });
}

bool Request::has_header(const std::string& key) const {
  return headers.find(key) != headers.end();
}
std::string Request::get_header_value(const std::string& key, size_t id) const {
  auto [it, end] = headers.equal_range(key);
  for (size_t i = 0; it != end && i < id; ++i) ++it;
  return it == end ? std::string() : it->second;
}
size_t Request::get_header_value_count(const std::string& key) const {
  return headers.count(key);
}
bool Request::has_param(const std::string& key) const {
  return params.find(key) != params.end();
}
std::string Request::get_param_value(const std::string& key, size_t id) const {
  auto [it, end] = params.equal_range(key);
  for (size_t i = 0; it != end && i < id; ++i) ++it;
  return it == end ? std::string() : it->second;
}
size_t Request::get_param_value_count(const std::string& key) const {
  return params.count(key);
}

bool Response::has_header(const std::string& key) const {
  return headers.find(key) != headers.end();
}
std::string Response::get_header_value(const std::string& key, size_t id) const {
  auto [it, end] = headers.equal_range(key);
  for (size_t i = 0; it != end && i < id; ++i) ++it;
  return it == end ? std::string() : it->second;
}
void Response::set_header(const std::string& key, const std::string& value) {
  if (hasCrLf(key) || hasCrLf(value)) return;
  headers.emplace(key, value);
}
void Response::set_content(std::string text, const std::string& content_type) {
  body = std::move(text);
  headers.erase("Content-Type");
  set_header("Content-Type", content_type);
}
void Response::set_content(const char* data, size_t n, const std::string& content_type) {
  set_content(std::string(data, n), content_type);
}
void Response::set_chunked_content_provider(const std::string& content_type,
                                            ContentProviderWithoutLength provider) {
  body.clear();
  headers.erase("Content-Type");
  set_header("Content-Type", content_type);
  content_provider_ = std::move(provider);
}
void Response::set_redirect(const std::string& url, int code) {
  if (hasCrLf(url)) return;
  headers.erase("Location");
  set_header("Location", url);
  location = url;
  status = code >= 300 && code < 400 ? code : 302;
}

std::string decodeUrl(std::string_view text, bool plusIsSpace) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '%' && i + 2 < text.size()) {
      const int hi = hexValue(text[i + 1]), lo = hexValue(text[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
        continue;
      }
    }
    out += plusIsSpace && c == '+' ? ' ' : c;
  }
  return out;
}

void parseQuery(std::string_view query, Params& params) {
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    const size_t eq = pair.find('=');
    const std::string_view key = pair.substr(0, eq);
    if (key.empty()) continue;
    const std::string_view value =
        eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    params.emplace(decodeUrl(key, true), decodeUrl(value, true));
  }
}

std::string contentTypeOfFile(const std::string& path) {
  const size_t dot = path.find_last_of("./");
  if (dot == std::string::npos || path[dot] != '.') return {};
  std::string ext = path.substr(dot + 1);
  for (auto& c : ext) c = lower(c);
  static const std::pair<const char*, const char*> kTypes[] = {
      {"css", "text/css"},         {"csv", "text/csv"},
      {"htm", "text/html"},        {"html", "text/html"},
      {"js", "text/javascript"},   {"mjs", "text/javascript"},
      {"txt", "text/plain"},       {"vtt", "text/vtt"},
      {"apng", "image/apng"},      {"avif", "image/avif"},
      {"bmp", "image/bmp"},        {"gif", "image/gif"},
      {"png", "image/png"},        {"svg", "image/svg+xml"},
      {"webp", "image/webp"},      {"ico", "image/x-icon"},
      {"tif", "image/tiff"},       {"tiff", "image/tiff"},
      {"jpg", "image/jpeg"},       {"jpeg", "image/jpeg"},
      {"otf", "font/otf"},         {"ttf", "font/ttf"},
      {"woff", "font/woff"},       {"woff2", "font/woff2"},
      {"pdf", "application/pdf"},  {"json", "application/json"},
      {"xml", "application/xml"},  {"xhtml", "application/xhtml+xml"},
      {"gz", "application/gzip"},  {"zip", "application/zip"},
      {"wasm", "application/wasm"}};
  for (const auto& [e, type] : kTypes)
    if (ext == e) return type;
  return {};
}

bool compressible(const std::string& contentType) {
  return (contentType.rfind("text/", 0) == 0 && contentType != "text/event-stream") ||
         contentType == "image/svg+xml" || contentType == "application/javascript" ||
         contentType == "application/json" || contentType == "application/xml" ||
         contentType == "application/xhtml+xml";
}

void Router::add(const std::string& method, const std::string& pattern, Handler handler) {
  routes_.push_back({method, std::regex(pattern), std::move(handler)});
}

bool Router::set_mount_point(const std::string& mount, const std::string& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return false;
  mounts_.push_back({mount, dir});
  return true;
}

bool Router::serveFile(const Request& req, Response& res) const {
  for (const auto& m : mounts_) {
    if (req.path.compare(0, m.prefix.size(), m.prefix) != 0) continue;
    std::string sub = "/";  // appended: GCC 12 reports a false -Wrestrict on "/" + string
    sub.append(req.path, m.prefix.size());
    if (!staysInside(sub)) continue;
    std::string file = m.dir + sub;
    if (file.back() == '/') file += "index.html";
    if (!isFile(file)) continue;
    std::ifstream in(file, std::ios::binary);
    if (!in) continue;
    std::ostringstream text;
    text << in.rdbuf();
    res.body = text.str();
    if (const auto type = contentTypeOfFile(file); !type.empty())
      res.set_header("Content-Type", type);
    res.status = 200;
    return true;
  }
  return false;
}

bool Router::dispatch(Request& req, Response& res) const {
  const std::string& method = req.method == "HEAD" ? std::string("GET") : req.method;
  for (const auto& r : routes_) {
    if (r.method != method) continue;
    if (!std::regex_match(req.path, req.matches, r.pattern)) continue;
    r.handler(req, res);
    return true;
  }
  return false;
}

void Router::handle(Request& req, Response& res, bool runPostRouting) const {
  try {
    const bool getLike = req.method == "GET" || req.method == "HEAD";
    if (!(getLike && serveFile(req, res)) && !dispatch(req, res)) {
      res = Response{};
      sendError(
          res, Error::notFound("not_found", "no route for " + req.method + " " + req.path, "path"));
    }
  } catch (const std::exception& e) {
    spdlog::error("unhandled exception on {} {}: {}", req.method, req.path, e.what());
    res = Response{};
    sendError(res, Error::internal("internal error"));
  } catch (...) {
    spdlog::error("unhandled exception on {} {}: unknown", req.method, req.path);
    res = Response{};
    sendError(res, Error::internal("internal error"));
  }
  if (res.status == -1) res.status = 200;
  if (res.status >= 400 && res.body.empty() && !res.content_provider_)
    sendError(
        res,
        Error::invalid("http_error", "",
                       "the request could not be served (HTTP " + std::to_string(res.status) + ")"),
        res.status);
  if (runPostRouting) postRouting(req, res);
}

void Router::postRouting(const Request& req, Response& res) const {
  if (postRouting_) postRouting_(req, res);
}

}  // namespace dc::web
