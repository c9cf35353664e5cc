// Prometheus text exposition format 0.0.4
// (https://prometheus.io/docs/instrumenting/exposition_formats/): the one writer of every /metrics
// producer (web/routes.cpp, cleanup/sweeper.cpp, main/console_app.cpp).
#pragma once

#include <concepts>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dc::prometheus {

enum class Type { kCounter, kGauge, kHistogram };

/// Label pairs of one sample, in the order written: {{"category", "Container"}, ...}.
using Labels = std::initializer_list<std::pair<std::string_view, std::string_view>>;

/// A label value escaped for the text format: `\` → `\\`, `"` → `\"`, newline → `\n`.
std::string escapeLabelValue(std::string_view value);

/// HELP text escaped for the text format: `\` → `\\`, newline → `\n` (quotes stay).
std::string escapeHelp(std::string_view help);

/// A sample value: integers exactly, other values in the shortest form that reads back to the
/// same double (e.g. 0.25, 1e+06); NaN, +Inf and -Inf as the format spells them.
std::string formatValue(double value);

/// Writes families in order. Each family() writes `# HELP` and `# TYPE` once; the sample()
/// calls after it write lines of that family. Metric and label names are the caller's
/// literals ([a-zA-Z_:][a-zA-Z0-9_:]*), not checked here.
class Writer {
 public:
  /// `# HELP name help` and `# TYPE name type`; the following samples belong to `name`.
  Writer& family(std::string_view name, std::string_view help, Type type);

  /// `name{labels} value` for the current family (no braces without labels).
  Writer& sample(Labels labels, double value) { return line({}, labels, formatValue(value)); }
  template <std::integral T>
  requires(!std::same_as<T, bool>) Writer& sample(Labels labels, T value) {
    return line({}, labels, std::to_string(value));
  }
  template <typename T>
  Writer& sample(T value) {
    return sample(Labels{}, value);
  }

  /// A one-sample counter or gauge family.
  template <typename T>
  Writer& counter(std::string_view name, std::string_view help, T value) {
    return family(name, help, Type::kCounter).sample(value);
  }
  template <typename T>
  Writer& gauge(std::string_view name, std::string_view help, T value) {
    return family(name, help, Type::kGauge).sample(value);
  }

  /// The samples of one histogram of the current (kHistogram) family: `name_bucket{le=...}` for
  /// each (upper bound, cumulative count) in ascending bounds, then `le="+Inf"` = `count`,
  /// `name_sum` and `name_count`. `labels` go before `le`.
  Writer& histogram(Labels labels, const std::vector<std::pair<double, uint64_t>>& buckets,
                    double sum, uint64_t count);

  /// The text written so far.
  const std::string& text() const { return out_; }
  std::string take() { return std::move(out_); }

 private:
  Writer& line(std::string_view suffix, Labels labels, const std::string& value,
               std::string_view le = {});

  std::string out_;
  std::string name_;
};

}  // namespace dc::prometheus
