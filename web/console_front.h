// The two fronts of the Console listener over one Router (web/router.h, routes on
// web::Request/Response), chosen with `--console-front` (docs/operations.md, "Console API
// fronts"): cpp-httplib (web/http_listener.h, a worker thread per keep-alive connection) and the
// event-driven one (channel/asio_listener.h, a few I/O threads hold every connection). Both
// answer the same: the router's answer, its post-routing headers on every answer (the fronts'
// own refusals included), gzip when the client offers it and the Content-Type is compressible
// (never Brotli), HEAD as GET without the body, streamed bodies with chunked encoding.
#pragma once

#include <memory>

#include "channel/message.h"
#include "web/router.h"

namespace httplib {
class Server;
}

namespace dc::web {

/// Serves `router` on a cpp-httplib server: catch-all handlers (GET/HEAD, POST — its body
/// bounded by postBounded(), web/http_listener.h — PUT, DELETE, PATCH, OPTIONS) convert the
/// request, call the router and copy its answer back (a content provider streamed with chunked
/// encoding as it produces); the library's own errors get JSON bodies (installErrorHandlers,
/// web/routes.h) and every answer the router's post-routing handler. The library compresses.
void serveOnHttplib(httplib::Server& server, std::shared_ptr<const Router> router);

/// The event-driven front's request handler (channel::RequestHandler; runs on a worker):
/// converts the request (path percent-decoded, query parsed as cpp-httplib does), calls the
/// router without its post-routing handler (decorateOnAsio runs it), and converts the answer:
/// gzip-compressed when `Accept-Encoding` names gzip and the Content-Type is compressible(); a
/// content provider becomes channel::Response::stream, compressed as a stream when so.
channel::Response serveOnAsio(const Router& router, const channel::Request& request);

/// The router's post-routing handler on an answer of the event-driven front, its protocol
/// refusals included (channel::AsioListenerOptions::decorate).
void decorateOnAsio(const Router& router, const channel::Request& request,
                    channel::Response& response);

}  // namespace dc::web
