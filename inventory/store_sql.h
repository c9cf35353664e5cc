// Pieces of SQL text and stored values that both inventory stores (sqlite_store.cpp,
// pg_store.cpp) build the same way. Internal to the stores.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "inventory/defender.h"
#include "inventory/query.h"

namespace dc::inventory::storesql {

/// The stored form of a reported version: dc::versionKey, or nullopt (NULL) when it does not
/// parse (common/defender_version.h).
std::optional<long long> storedVersionKey(std::string_view version);

/// cloudMetadata.image of `d` ("" when none): kept in its own column for the `image` filter.
std::string imageOf(const Defender& d);

/// A LIKE pattern matching `term` anywhere, its wildcards (`%`, `_`) and the escape character
/// (`\`) escaped: use with `ESCAPE '\'`.
std::string likePattern(std::string_view term);

/// " ORDER BY <column> ASC|DESC, key ASC|DESC" for `key` (" ORDER BY key …" for the hostname,
/// which is the tie-breaker). The plain columns are fixed here; `computed` gives the SQL
/// expression of the two derived keys, kLastModified and kConnected (with the backend's own
/// parameters).
std::string orderBy(SortKey key, bool reverse, const std::function<std::string(SortKey)>& computed);

}  // namespace dc::inventory::storesql
