// Parsing of list query parameters (DESIGN §3). Errors are 400s naming the parameter.
#pragma once

#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "audit/log.h"
#include "common/status.h"
#include "inventory/query.h"

namespace dc::web {

using Params = std::multimap<std::string, std::string>;

/// The parameters of the Defender routes (list, names, download): the filters and paging of
/// parseDefenderQuery() plus the vendor's `fields` (a column selection, accepted and ignored:
/// every column is always sent).
extern const std::initializer_list<std::string_view> kDefenderQueryParams;

/// The unknown-parameter rule (docs/api.md, "Query parameters"): every parameter of `params`
/// must be one of `known` or `project` (sent by the vendor's clients on every call; this Console
/// has a single project, so it is accepted and ignored). Anything else is refused, because a
/// filter that is silently ignored widens the result (a typo such as `hostnme=` would list, and
/// a client might then delete, the whole fleet). Errors: kInvalidArgument
/// "invalid_parameter" with `field` = the first unknown parameter; the message says whether it
/// is a vendor filter this Console does not support (e.g. `collections`, `provider`) or unknown.
Status requireKnownParams(const Params& params, std::initializer_list<std::string_view> known);

/// `offset` (≥ 0), `limit` (1..250, default 50), `sort` (hostname, type, category, version,
/// cluster, appID, lastModified, connected, lastSeen), `reverse` (true|false), `hostname`,
/// `type` (repeatable and/or comma-separated vendor types), `category`, `connected`
/// (true|false), `cluster`, `appID`, `family` (exact, case-sensitive: the App ID's part before
/// `:<uuid>`), `version` (exact reported version), `search` (text filters: UTF-8 without
/// control characters), `outdated`
/// (true|false: version older than the deployed one; DefenderQuery::outdated).
/// Errors: "invalid_parameter" (kInvalidArgument)
/// with `field` = the parameter name (also for a parameter outside kDefenderQueryParams);
/// "unknown_type" for a type outside the vendor enum.
Result<inventory::DefenderQuery> parseDefenderQuery(const Params& params);

/// The first value of parameter `name` as sent (possibly empty); nullopt when absent.
std::optional<std::string> rawParam(const Params& params, const std::string& name);

/// A text parameter: its first value; absent or empty = nullopt (an empty value is the default,
/// as for every parameter of parseDefenderQuery).
std::optional<std::string> textParam(const Params& params, const std::string& name);

/// Every value of a repeatable parameter, in the order sent.
std::vector<std::string> paramValues(const Params& params, const std::string& name);

/// An optional boolean parameter: `true`/`1`, `false`/`0`; absent or empty = nullopt.
/// Errors: "invalid_parameter" naming it.
Result<std::optional<bool>> parseBoolParam(const Params& params, const std::string& name);

/// `GET /api/v1/audit/events` (and its download): `kind` (one of audit::eventKinds()), `user`
/// (exact), `since` (inclusive) and `until` (exclusive), RFC 3339 times, e.g.
/// 2026-12-07T13:00:00Z; `offset`/`limit` as parsePaging unless `download` (then every match
/// from `offset` on, or `limit` of them when given; limit up to 100,000). Any other parameter is
/// refused (requireKnownParams). Errors: "invalid_parameter" naming the parameter.
Result<audit::EventQuery> parseAuditEventQuery(const Params& params, bool download);

/// Paging only (`offset`, `limit`), with the same rules.
Result<std::pair<int, int>> parsePaging(const Params& params);

}  // namespace dc::web
