#include "web/console_front.h"

#include <httplib.h>
#include <zlib.h>

#include <cstdlib>
#include <stdexcept>

#include <spdlog/spdlog.h>

#include "web/http_listener.h"
#include "web/routes.h"

namespace dc::web {

namespace {

/// gzip as a stream (zlib's default level, as cpp-httplib's compressor).
class Gzip {
 public:
  Gzip() {
    if (deflateInit2(&z_, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) != Z_OK)
      throw std::runtime_error("zlib: deflateInit2 failed");
  }
  ~Gzip() { deflateEnd(&z_); }
  Gzip(const Gzip&) = delete;
  Gzip& operator=(const Gzip&) = delete;

  /// Compresses `in` and appends the output to `out`; `last` ends the stream.
  void compress(std::string_view in, bool last, std::string& out) {
    z_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    z_.avail_in = static_cast<uInt>(in.size());
    char buf[16384];
    int rc = Z_OK;
    do {
      z_.next_out = reinterpret_cast<Bytef*>(buf);
      z_.avail_out = sizeof buf;
      rc = deflate(&z_, last ? Z_FINISH : Z_NO_FLUSH);
      if (rc == Z_STREAM_ERROR) throw std::runtime_error("zlib: deflate failed");
      out.append(buf, sizeof buf - z_.avail_out);
    } while (z_.avail_out == 0 || (last && rc != Z_STREAM_END));
  }

 private:
  z_stream z_{};
};

/// True when `Accept-Encoding` lists gzip with a non-zero weight (RFC 9110 §12.5.3: `gzip;q=0`
/// means "not gzip").
bool offersGzip(const Request& req) {
  const std::string header = req.get_header_value("Accept-Encoding");
  std::string_view rest = header;
  auto trim = [](std::string_view v) {
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
    return v;
  };
  auto lower = [](std::string_view v) {
    std::string out(v);
    for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
  };
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    std::string_view item = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    const size_t semi = item.find(';');
    if (lower(trim(item.substr(0, semi))) != "gzip") continue;
    if (semi == std::string_view::npos) return true;
    const std::string params = lower(trim(item.substr(semi + 1)));
    if (!params.starts_with("q=")) return true;
    return std::strtod(params.c_str() + 2, nullptr) > 0.0;
  }
  return false;
}

Request toRequest(const channel::Request& in) {
  Request r;
  r.method = in.method;
  const std::string_view target = in.target.empty() ? std::string_view(in.path) : in.target;
  const size_t q = target.find('?');
  r.path = decodeUrl(target.substr(0, q), false);
  if (q != std::string_view::npos) parseQuery(target.substr(q + 1), r.params);
  for (const auto& [name, value] : in.headers) r.headers.emplace(name, value);
  r.body = in.body;
  r.remote_addr = in.remoteAddr;
  return r;
}

}  // namespace

void serveOnHttplib(httplib::Server& server, std::shared_ptr<const Router> router) {
  installErrorHandlers(server);
  // Every answer, the library's own (400, 414, 413, the listener's 411/431/503) included.
  server.set_post_routing_handler([router](const httplib::Request& in, httplib::Response& out) {
    Request req;
    req.method = in.method;
    req.path = in.path;
    Response extra;
    router->postRouting(req, extra);
    for (const auto& [name, value] : extra.headers) out.set_header(name, value);
  });
  auto handler = [router](const httplib::Request& in, httplib::Response& out) {
    Request req;
    req.method = in.method;
    req.path = in.path;
    req.headers.insert(in.headers.begin(), in.headers.end());
    req.params = Params(in.params.begin(), in.params.end());
    req.body = in.body;
    req.remote_addr = in.remote_addr;
    req.remote_port = in.remote_port;
    Response res;
    router->handle(req, res, /*runPostRouting=*/false);
    out.status = res.status;
    const std::string type = res.get_header_value("Content-Type");
    for (const auto& [name, value] : res.headers)
      if (name != "Content-Type" || !res.content_provider_) out.set_header(name, value);
    if (res.content_provider_) {
      auto provider =
          std::make_shared<ContentProviderWithoutLength>(std::move(res.content_provider_));
      out.set_chunked_content_provider(type, [provider](size_t offset, httplib::DataSink& sink) {
        DataSink s;
        s.write = [&sink](const char* d, size_t n) { return sink.write(d, n); };
        s.done = [&sink] { sink.done(); };
        s.is_writable = [&sink] { return sink.is_writable(); };
        return (*provider)(offset, s);
      });
    } else {
      out.body = std::move(res.body);
    }
  };
  server.Get(".*", handler);
  server.Put(".*", handler);
  server.Delete(".*", handler);
  server.Patch(".*", handler);
  server.Options(".*", handler);
  postBounded(server, ".*", handler);  // chunked bodies bounded too
}

channel::Response serveOnAsio(const Router& router, const channel::Request& request) {
  Request req = toRequest(request);
  Response res;
  router.handle(req, res, /*runPostRouting=*/false);
  channel::Response out;
  out.status = res.status;
  out.contentType = res.get_header_value("Content-Type");
  if (out.contentType.empty() && (!res.body.empty() || res.content_provider_))
    out.contentType = "text/plain";
  for (const auto& [name, value] : res.headers)
    if (name != "Content-Type") out.headers.emplace_back(name, value);
  const bool gzip = offersGzip(req) && compressible(out.contentType);
  if (!res.content_provider_) {
    if (gzip && !res.body.empty()) {
      Gzip z;
      z.compress(res.body, true, out.body);
      out.headers.emplace_back("Content-Encoding", "gzip");
    } else {
      out.body = std::move(res.body);
    }
    return out;
  }
  // The provider writes to a sink that appends to the piece being produced; each call of
  // `stream` is one call of the provider (they run on one worker at a time, in order).
  struct State {
    ContentProviderWithoutLength provider;
    size_t offset = 0;
    bool done = false;
    std::unique_ptr<Gzip> gzip;
  };
  auto state = std::make_shared<State>();
  state->provider = std::move(res.content_provider_);
  if (gzip) {
    state->gzip = std::make_unique<Gzip>();
    out.headers.emplace_back("Content-Encoding", "gzip");
  }
  out.stream = [state](std::string& piece, bool& done) {
    std::string produced;
    DataSink sink;
    sink.write = [&produced](const char* d, size_t n) {
      produced.append(d, n);
      return true;
    };
    sink.done = [&state] { state->done = true; };
    sink.is_writable = [] { return true; };
    if (!state->provider(state->offset, sink)) return false;
    state->offset += produced.size();
    if (state->gzip)
      state->gzip->compress(produced, state->done, piece);
    else
      piece = std::move(produced);
    done = state->done;
    return true;
  };
  return out;
}

void decorateOnAsio(const Router& router, const channel::Request& request,
                    channel::Response& response) {
  Request req;
  req.method = request.method;
  req.path = decodeUrl(request.path, false);
  Response extra;
  router.postRouting(req, extra);
  for (const auto& [name, value] : extra.headers) response.headers.emplace_back(name, value);
}

}  // namespace dc::web
