#include "common/prometheus.h"

#include <charconv>
#include <cmath>

namespace dc::prometheus {

namespace {

const char* typeName(Type t) {
  switch (t) {
    case Type::kCounter:
      return "counter";
    case Type::kGauge:
      return "gauge";
    case Type::kHistogram:
      return "histogram";
  }
  return "untyped";
}

std::string escape(std::string_view s, bool quotes) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else if (c == '"' && quotes)
      out += "\\\"";
    else
      out += c;
  }
  return out;
}

}  // namespace

std::string escapeLabelValue(std::string_view value) {
  return escape(value, true);
}

std::string escapeHelp(std::string_view help) {
  return escape(help, false);
}

std::string formatValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, value);
  return std::string(buf, r.ptr);
}

Writer& Writer::family(std::string_view name, std::string_view help, Type type) {
  name_ = name;
  out_ += "# HELP ";
  out_ += name;
  out_ += ' ';
  out_ += escapeHelp(help);
  out_ += "\n# TYPE ";
  out_ += name;
  out_ += ' ';
  out_ += typeName(type);
  out_ += '\n';
  return *this;
}

Writer& Writer::line(std::string_view suffix, Labels labels, const std::string& value,
                     std::string_view le) {
  out_ += name_;
  out_ += suffix;
  if (labels.size() > 0 || !le.empty()) {
    out_ += '{';
    bool first = true;
    auto label = [&](std::string_view k, std::string_view v) {
      if (!first) out_ += ',';
      first = false;
      out_ += k;
      out_ += "=\"";
      out_ += escapeLabelValue(v);
      out_ += '"';
    };
    for (const auto& [k, v] : labels) label(k, v);
    if (!le.empty()) label("le", le);
    out_ += '}';
  }
  out_ += ' ';
  out_ += value;
  out_ += '\n';
  return *this;
}

Writer& Writer::histogram(Labels labels, const std::vector<std::pair<double, uint64_t>>& buckets,
                          double sum, uint64_t count) {
  for (const auto& [bound, cumulative] : buckets)
    line("_bucket", labels, std::to_string(cumulative), formatValue(bound));
  line("_bucket", labels, std::to_string(count), "+Inf");
  line("_sum", labels, formatValue(sum));
  return line("_count", labels, std::to_string(count));
}

}  // namespace dc::prometheus
