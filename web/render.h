// API shapes: the Defender object (vendor field names, DESIGN §3) and CSV rows.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "audit/log.h"
#include "inventory/liveness.h"
#include "inventory/store.h"

namespace dc::web {

/// The vendor Defender object plus our extensions. Objects (`cloudMetadata`, `features`,
/// `status`, `systemInfo`) and `collections` are always present, never null; cloudMetadata always
/// carries provider, accountID, region, resourceID, awsExecutionEnv, image, name (empty strings
/// when unknown). Times are RFC 3339 UTC. Extensions: `typeLabel` (UI label), `registeredAt`,
/// `lastSeen`, `disconnectedAt` and `removalAt` (null while connected), `clockSkewSeconds`
/// (Defender clock − Console clock at the newest heartbeat, null if never reported).
nlohmann::json defenderJson(const inventory::Defender& d, const inventory::Liveness& l);

nlohmann::json observationJson(const inventory::Observation& o);
nlohmann::json auditJson(const inventory::AuditRecord& a);
/// The `detail` of a defender.deleted / defender.evicted audit event: auditJson without `id`
/// and `time` (the event has its own).
nlohmann::json removalDetail(const inventory::AuditRecord& a);

/// An audit event (GET /api/v1/audit/events): {"id", "time" (RFC 3339 UTC), "kind", "user",
/// "address", "detail" (object)}.
nlohmann::json auditEventJson(const audit::Event& e);
/// The audit CSV's columns (id,time,kind,user,address,detail) and one row; `detail` is the
/// compact JSON text. Cells go through csvCell.
std::string auditEventCsvHeader();
std::string auditEventCsvRow(const audit::Event& e);

/// CSV download columns, in order.
std::string csvHeader();
std::string csvRow(const inventory::Defender& d, const inventory::Liveness& l);
/// One RFC 4180 cell; a cell that starts with =, +, -, @, tab or CR is prefixed with ' so that
/// spreadsheets do not evaluate it (CSV injection).
std::string csvCell(std::string_view value);

}  // namespace dc::web
