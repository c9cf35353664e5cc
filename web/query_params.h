// Parsing of list query parameters (DESIGN §3). Errors are 400s naming the parameter.
#pragma once

#include <map>
#include <string>

#include "common/status.h"
#include "inventory/query.h"

namespace dc::web {

using Params = std::multimap<std::string, std::string>;

/// `offset` (≥ 0), `limit` (1..250, default 50), `sort` (hostname, type, category, version,
/// cluster, appID, lastModified, connected, lastSeen), `reverse` (true|false), `hostname`,
/// `type` (repeatable and/or comma-separated vendor types), `category`, `connected`
/// (true|false), `cluster`, `appID`, `search` (text filters: UTF-8 without control characters),
/// `outdated` (true|false: version older than the deployed one; DefenderQuery::outdated).
/// Errors: "invalid_parameter" (kInvalidArgument)
/// with `field` = the parameter name; "unknown_type" for a type outside the vendor enum.
Result<inventory::DefenderQuery> parseDefenderQuery(const Params& params);

/// Paging only (`offset`, `limit`), with the same rules.
Result<std::pair<int, int>> parsePaging(const Params& params);

}  // namespace dc::web
