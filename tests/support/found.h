// Lookups in tests: `found(inv.find(x))` instead of `inv.find(x)->has_value()`, which reads the
// value of a Result without checking that the lookup succeeded (a storage error would abort in
// Debug builds and throw bad_variant_access in Release ones instead of failing with its message).
#pragma once

#include <catch2/catch.hpp>

#include <optional>

#include "common/status.h"

namespace dc::testing {

/// True when the lookup succeeded and found something; a failed lookup fails the test with the
/// error's code and message.
template <typename T>
bool found(const Result<std::optional<T>>& lookup) {
  if (!lookup.ok())
    FAIL("lookup failed: " << lookup.error().code << ": " << lookup.error().message);
  return lookup->has_value();
}

}  // namespace dc::testing
