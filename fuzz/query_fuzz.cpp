// Fuzz target: the query string of `GET /api/v1/defenders` (and its paging-only relatives) as
// the Console API sees it: decoded by cpp-httplib (parse_query_text, the same code the server
// runs), then web::parseDefenderQuery / parsePaging; every decoded value also goes through the
// RFC 3339 parser (common/time_format), as do the raw bytes.
//
// Properties beyond "no crash": an accepted query is within the documented ranges and has no
// control characters and only UTF-8 in its text filters; parse → serialise → parse gives the same
// query; paging agrees with the full parser; refusals are 4xx naming the parameter; an accepted
// timestamp formats back to text that parses to the same instant.
#include <httplib.h>
#include <algorithm>

#include <cstddef>
#include <cstdint>
#include <string>

#include "common/time_format.h"
#include "common/utf8.h"
#include "fuzz/fuzz_check.h"
#include "web/query_params.h"

using namespace dc;
using inventory::DefenderQuery;

namespace {

/// The query back as parameters, in the API's own spelling.
web::Params serialise(const DefenderQuery& q) {
  web::Params p;
  p.emplace("offset", std::to_string(q.offset));
  p.emplace("limit", std::to_string(q.limit));
  p.emplace("sort", std::string(inventory::sortKeyName(q.sort)));
  p.emplace("reverse", q.reverse ? "true" : "false");
  if (q.connected) p.emplace("connected", *q.connected ? "true" : "false");
  for (auto t : q.types) p.emplace("type", std::string(inventory::typeInfo(t).apiName));
  if (q.category) p.emplace("category", std::string(inventory::categoryName(*q.category)));
  if (q.hostname) p.emplace("hostname", *q.hostname);
  if (q.cluster) p.emplace("cluster", *q.cluster);
  if (q.appId) p.emplace("appID", *q.appId);
  if (q.search) p.emplace("search", *q.search);
  return p;
}

bool same(const DefenderQuery& a, const DefenderQuery& b) {
  return a.offset == b.offset && a.limit == b.limit && a.sort == b.sort && a.reverse == b.reverse &&
         a.hostname == b.hostname && a.types == b.types && a.category == b.category &&
         a.connected == b.connected && a.cluster == b.cluster && a.appId == b.appId &&
         a.image == b.image && a.container == b.container && a.search == b.search;
}

void checkTime(const std::string& text) {
  auto t = parseRfc3339(text);
  if (!t) return;
  // Shortest accepted form: "YYYY-MM-DDTHH:MM:SSZ".
  DC_FUZZ_CHECK(text.size() >= 20);
  const std::string formatted = formatRfc3339(*t);
  DC_FUZZ_CHECK(formatted.size() == 24 && formatted.back() == 'Z');
  auto back = parseRfc3339(formatted);
  DC_FUZZ_CHECK(back.has_value());
  DC_FUZZ_CHECK(*back == *t);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string raw(reinterpret_cast<const char*>(data), size);
  checkTime(raw);

  httplib::Params decoded;
  httplib::detail::parse_query_text(raw, decoded);
  const web::Params params(decoded.begin(), decoded.end());
  for (const auto& [name, value] : params) checkTime(value);

  auto paging = web::parsePaging(params);
  auto q = web::parseDefenderQuery(params);
  if (!q.ok()) {
    const auto& e = q.error();
    DC_FUZZ_CHECK(e.kind == ErrorKind::kInvalidArgument);
    DC_FUZZ_CHECK(e.code == "invalid_parameter" || e.code == "unknown_type");
    // The field names the parameter; an unknown name is shown by its first 64 bytes.
    DC_FUZZ_CHECK(
        params.count(e.field) > 0 ||
        (e.field.size() == 64 && std::any_of(params.begin(), params.end(), [&](const auto& p) {
           return p.first.size() > 64 && p.first.compare(0, 64, e.field) == 0;
         })));
    DC_FUZZ_CHECK(!e.message.empty());
    // An unknown parameter is refused first (docs/api.md "Query parameters"); otherwise a
    // paging error is the one reported.
    const bool allKnown = web::requireKnownParams(params, web::kDefenderQueryParams).ok();
    if (!paging.ok() && allKnown) DC_FUZZ_CHECK(paging.error().field == e.field);
    return 0;
  }
  DC_FUZZ_CHECK(paging.ok());
  DC_FUZZ_CHECK(paging->first == q->offset && paging->second == q->limit);
  DC_FUZZ_CHECK(q->offset >= 0);
  DC_FUZZ_CHECK(q->limit >= 1 && q->limit <= inventory::kMaxLimit);
  DC_FUZZ_CHECK(!q->image && !q->container);  // not list filters of this endpoint
  for (const auto* text : {&q->hostname, &q->cluster, &q->appId, &q->search}) {
    if (!*text) continue;
    DC_FUZZ_CHECK(!(*text)->empty());
    for (unsigned char c : **text) DC_FUZZ_CHECK(c >= 0x20 && c != 0x7f);
    DC_FUZZ_CHECK(isValidUtf8(**text));
  }

  auto again = web::parseDefenderQuery(serialise(*q));
  DC_FUZZ_CHECK(again.ok());
  DC_FUZZ_CHECK(same(*q, *again));
  return 0;
}
