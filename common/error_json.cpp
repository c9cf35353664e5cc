#include "common/error_json.h"

#include <nlohmann/json.hpp>

namespace dc {

std::string errorJson(const Error& error, const std::vector<Error>& problems) {
  nlohmann::json body{{"code", error.code}, {"message", error.message}};
  if (!error.field.empty()) body["field"] = error.field;
  body["err"] = error.message;
  if (!problems.empty()) {
    body["problems"] = nlohmann::json::array();
    for (const auto& p : problems)
      body["problems"].push_back({{"code", p.code}, {"message", p.message}, {"field", p.field}});
  }
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace dc
