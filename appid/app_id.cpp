#include "appid/app_id.h"

#include <uuid/uuid.h>

namespace dc::appid {

namespace {

bool isFamilyChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_';
}

bool isHex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

}  // namespace

Status validateFamily(std::string_view family, std::string_view field) {
  if (family.empty())
    return Error::invalid("invalid_family", std::string(field),
                          std::string(field) + ": task family must not be empty");
  if (family.size() > kMaxFamilyLength)
    return Error::invalid("invalid_family", std::string(field),
                          std::string(field) + ": task family is " + std::to_string(family.size()) +
                              " characters; ECS allows at most 255");
  for (char c : family) {
    if (!isFamilyChar(c))
      return Error::invalid(
          "invalid_family", std::string(field),
          std::string(field) +
              ": task family may contain only letters, digits, '-' and '_' (ECS rule)");
  }
  return Status::success();
}

bool isCanonicalUuid(std::string_view s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? s[i] != '-' : !isHex(s[i])) return false;
  }
  return true;
}

Result<AppId> parse(std::string_view text, std::string_view field) {
  const auto colon = text.find(':');
  if (colon == std::string_view::npos)
    return Error::invalid("invalid_app_id", std::string(field),
                          std::string(field) + ": App ID must be <task family>:<uuid>");
  const auto family = text.substr(0, colon);
  const auto uuid = text.substr(colon + 1);
  if (auto st = validateFamily(family, field); !st.ok()) {
    Error e = st.error();
    e.code = "invalid_app_id";
    e.message = std::string(field) + ": App ID family part is invalid: " + e.message;
    return e;
  }
  if (!isCanonicalUuid(uuid))
    return Error::invalid(
        "invalid_app_id", std::string(field),
        std::string(field) + ": App ID must end in a UUID (8-4-4-4-12 hex digits) after the ':'");
  return AppId{std::string(family), std::string(uuid)};
}

Result<AppId> generate(std::string_view family) {
  if (auto st = validateFamily(family); !st.ok()) return st.error();
  uuid_t raw;
  uuid_generate_random(raw);
  char text[37];
  uuid_unparse_lower(raw, text);
  return AppId{std::string(family), std::string(text)};
}

}  // namespace dc::appid
