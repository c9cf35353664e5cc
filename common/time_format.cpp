#include "common/time_format.h"

#include <charconv>
#include <chrono>
#include <cstdio>

namespace dc {

std::string formatRfc3339(TimePoint t) {
  using namespace std::chrono;
  const auto day = floor<days>(t);
  const year_month_day ymd{day};
  const hh_mm_ss<Millis> hms{t - day};
  char buf[40];
  std::snprintf(
      buf, sizeof buf, "%04d-%02u-%02uT%02lld:%02lld:%02lld.%03lldZ", int(ymd.year()),
      unsigned(ymd.month()), unsigned(ymd.day()), static_cast<long long>(hms.hours().count()),
      static_cast<long long>(hms.minutes().count()), static_cast<long long>(hms.seconds().count()),
      static_cast<long long>(hms.subseconds().count()));
  return buf;
}

namespace {

bool readInt(std::string_view s, size_t pos, size_t len, int& out) {
  if (pos + len > s.size()) return false;
  for (size_t i = pos; i < pos + len; ++i)
    if (s[i] < '0' || s[i] > '9') return false;
  auto r = std::from_chars(s.data() + pos, s.data() + pos + len, out);
  return r.ec == std::errc();
}

}  // namespace

std::optional<TimePoint> parseRfc3339(std::string_view s) {
  using namespace std::chrono;
  int y, mo, d, h, mi, sec;
  if (s.size() < 20) return std::nullopt;
  if (!readInt(s, 0, 4, y) || s[4] != '-' || !readInt(s, 5, 2, mo) || s[7] != '-' ||
      !readInt(s, 8, 2, d) || (s[10] != 'T' && s[10] != 't') || !readInt(s, 11, 2, h) ||
      s[13] != ':' || !readInt(s, 14, 2, mi) || s[16] != ':' || !readInt(s, 17, 2, sec))
    return std::nullopt;
  const year_month_day ymd{year{y}, month{unsigned(mo)}, day{unsigned(d)}};
  // Second 60 exists only as a leap second, at 23:59 (RFC 3339 §5.7).
  if (!ymd.ok() || h > 23 || mi > 59 || sec > 60 || (sec == 60 && (h != 23 || mi != 59)))
    return std::nullopt;
  size_t pos = 19;
  long long ms = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    size_t digits = 0;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      if (digits < 3) ms = ms * 10 + (s[pos] - '0');
      ++digits;
      ++pos;
    }
    if (digits == 0) return std::nullopt;
    for (size_t i = digits; i < 3; ++i) ms *= 10;
  }
  if (pos >= s.size()) return std::nullopt;
  long long offsetMinutes = 0;
  if (s[pos] == 'Z' || s[pos] == 'z') {
    ++pos;
  } else if (s[pos] == '+' || s[pos] == '-') {
    int oh, om;
    if (!readInt(s, pos + 1, 2, oh) || pos + 3 >= s.size() || s[pos + 3] != ':' ||
        !readInt(s, pos + 4, 2, om) || oh > 23 || om > 59)
      return std::nullopt;
    offsetMinutes = (s[pos] == '+' ? 1 : -1) * (oh * 60LL + om);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != s.size()) return std::nullopt;
  const TimePoint t = TimePoint(sys_days{ymd}.time_since_epoch()) + hours{h} + minutes{mi} +
                      std::chrono::seconds{sec} + Millis{ms} - minutes{offsetMinutes};
  // The offset may move the instant outside the four-digit years RFC 3339 can write.
  const year_month_day utc{floor<days>(t)};
  if (utc.year() < year{0} || utc.year() > year{9999}) return std::nullopt;
  return t;
}

}  // namespace dc
