// Error policy for component boundaries.
//
// Expected failures (bad input, unknown id, busy database) travel as an `Error` with a category
// (`ErrorKind`) and a stable machine-readable `code` such as "invalid_field". Invariant
// violations assert. The mapping from ErrorKind to an HTTP status lives in exactly one place:
// common/http_status.cpp.
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace dc {

enum class ErrorKind {
  kInvalidArgument,   // 400: the request is malformed or a field is invalid
  kUnauthenticated,   // 401
  kPermissionDenied,  // 403
  kNotFound,          // 404
  kConflict,          // 409
  kTooLarge,          // 413
  kRateLimited,       // 429
  kUnavailable,       // 503: storage busy or failing; the client may retry
  kInternal,          // 500: a bug
};

struct Error {
  ErrorKind kind = ErrorKind::kInternal;
  /// Stable, machine-readable code (snake_case), e.g. "invalid_field", "unknown_type".
  std::string code;
  /// Human-readable message; names the offending field or path where there is one.
  std::string message;
  /// The offending field or path (JSON pointer-like, e.g. "cloudMetadata.region"); may be empty.
  std::string field;
  /// For kRateLimited / kUnavailable: seconds the client should wait (HTTP Retry-After); 0 =
  /// the transport's default.
  int retryAfterSeconds = 0;

  static Error invalid(std::string code, std::string field, std::string message) {
    return {ErrorKind::kInvalidArgument, std::move(code), std::move(message), std::move(field)};
  }
  static Error notFound(std::string code, std::string message, std::string field = {}) {
    return {ErrorKind::kNotFound, std::move(code), std::move(message), std::move(field)};
  }
  static Error unavailable(std::string message) {
    return {ErrorKind::kUnavailable, "storage_unavailable", std::move(message), {}};
  }
  static Error internal(std::string message) {
    return {ErrorKind::kInternal, "internal", std::move(message), {}};
  }
};

/// Either a value or an Error.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT: implicit by design
  Result(Error error) : v_(std::move(error)) {}  // NOLINT: implicit by design

  bool ok() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return ok(); }

  T& value() & {
    assert(ok());
    return std::get<T>(v_);
  }
  const T& value() const& {
    assert(ok());
    return std::get<T>(v_);
  }
  T&& value() && {
    assert(ok());
    return std::get<T>(std::move(v_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const Error& error() const {
    assert(!ok());
    return std::get<Error>(v_);
  }

 private:
  std::variant<T, Error> v_;
};

/// Success or an Error.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT: implicit by design
  static Status success() { return {}; }

  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const {
    assert(!ok_);
    return error_;
  }

 private:
  Error error_;
  bool ok_ = true;
};

}  // namespace dc
