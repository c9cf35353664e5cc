#include <catch2/catch.hpp>

#include <limits>

#include "common/defender_version.h"
#include "common/error_json.h"
#include "common/prometheus.h"
#include "common/time_format.h"
#include "common/utf8.h"

using namespace dc;
using namespace std::chrono;

TEST_CASE("RFC 3339 formatting is UTC with Z and milliseconds") {
  const TimePoint t = TimePoint(sys_days{2026y / November / 29}.time_since_epoch()) + hours{19} +
                      minutes{35} + seconds{41} + Millis{7};
  CHECK(formatRfc3339(t) == "2026-11-29T19:35:41.007Z");
  CHECK(formatRfc3339(TimePoint{}) == "1970-01-01T00:00:00.000Z");
}

TEST_CASE("RFC 3339 parsing handles Z, offsets and fractions") {
  const auto base = parseRfc3339("2026-03-08T07:00:00Z");
  REQUIRE(base);
  CHECK(formatRfc3339(*base) == "2026-03-08T07:00:00.000Z");
  // -05:00 (New York standard time) is 5 hours behind UTC.
  CHECK(parseRfc3339("2026-03-08T02:00:00-05:00") == base);
  CHECK(parseRfc3339("2026-03-08T12:30:00+05:30") == base);
  CHECK(formatRfc3339(*parseRfc3339("2026-03-08T07:00:00.123456Z")) == "2026-03-08T07:00:00.123Z");
  CHECK(formatRfc3339(*parseRfc3339("2026-03-08T07:00:00.5Z")) == "2026-03-08T07:00:00.500Z");
}

TEST_CASE("RFC 3339 parsing rejects malformed text") {
  for (const char* bad :
       {"", "2026-03-08", "2026-03-08 07:00:00Z", "2026-02-30T07:00:00Z", "2026-03-08T24:00:00Z",
        "2026-03-08T07:00:00", "2026-03-08T07:00:00.Z", "2026-03-08T07:00:00Zjunk",
        "2026-03-08T07:00:00+5:00", "abcd-03-08T07:00:00Z"}) {
    INFO(bad);
    CHECK_FALSE(parseRfc3339(bad).has_value());
  }
}

TEST_CASE("RFC 3339 parsing accepts a leap second at 23:59 and the year bounds") {
  CHECK(parseRfc3339("2016-12-31T23:59:60Z").has_value());
  CHECK(parseRfc3339("0000-01-01T00:00:00Z").has_value());
  CHECK(parseRfc3339("9999-12-31T23:59:59Z").has_value());
}

TEST_CASE("UTF-8 validation follows RFC 3629") {
  CHECK(isValidUtf8(""));
  CHECK(isValidUtf8("plain ascii"));
  CHECK(isValidUtf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x9b\xa1"));  // é € and a 4-byte emoji
  CHECK(isValidUtf8("\xf4\x8f\xbf\xbf"));                           // U+10FFFF, the last one
  CHECK_FALSE(isValidUtf8("\xff"));
  CHECK_FALSE(isValidUtf8("\x80"));              // continuation without a lead byte
  CHECK_FALSE(isValidUtf8("\xc3"));              // truncated
  CHECK_FALSE(isValidUtf8("\xe2\x82"));          // truncated
  CHECK_FALSE(isValidUtf8("\xc0\xaf"));          // overlong '/'
  CHECK_FALSE(isValidUtf8("\xe0\x80\xaf"));      // overlong '/'
  CHECK_FALSE(isValidUtf8("\xf0\x80\x80\xaf"));  // overlong '/'
  CHECK_FALSE(isValidUtf8("\xed\xa0\x80"));      // surrogate U+D800
  CHECK_FALSE(isValidUtf8("\xf4\x90\x80\x80"));  // above U+10FFFF
  CHECK_FALSE(isValidUtf8("a\xc3(b"));           // bad continuation
}

TEST_CASE("Unicode noncharacters are found in UTF-8 text") {
  CHECK_FALSE(hasNoncharacter("caf\xc3\xa9 \xef\xbf\xbd \xf0\x9f\x9b\xa1"));  // incl. U+FFFD
  CHECK(hasNoncharacter("a\xef\xbf\xbf"));                                    // U+FFFF
  CHECK(hasNoncharacter("\xef\xbf\xbe"));                                     // U+FFFE
  CHECK(hasNoncharacter("\xef\xb7\x90"));                                     // U+FDD0
  CHECK_FALSE(hasNoncharacter("\xef\xb7\xb0"));                               // U+FDF0
  CHECK(hasNoncharacter("\xf0\x9f\xbf\xbf"));                                 // U+1FFFF
  CHECK(hasNoncharacter("\xf4\x8f\xbf\xbe"));                                 // U+10FFFE
}

TEST_CASE("Deployed Defender versions are the vendor's strict MM.mm.bbb form", "[version]") {
  const auto v = parseDeployedVersion("34.01.132");
  REQUIRE(v);
  CHECK(*v == DefenderVersion{34, 1, 132});
  CHECK(formatVersion(*v) == "34.01.132");
  CHECK(defenderImageTag(*v) == "defender_34_01_132");
  CHECK(defenderImageTag(DefenderVersion{22, 12, 694}) == "defender_22_12_694");
  for (const char* bad : {"", "34.1.132", "34.01.13", "34.01.1320", "v34.01.132", "34.01.132 ",
                          "34.01", "34.01.132.1", "34-01-132", "3a.01.132", "34..132"})
    CHECK_FALSE(parseDeployedVersion(bad));
}

TEST_CASE("Reported Defender versions compare numerically, not as text", "[version]") {
  const DefenderVersion deployed{34, 1, 132};
  // "34.1.99" sorts after "34.01.132" as text; numerically it is older.
  CHECK(judgeVersion("34.1.99", deployed).outdated);
  CHECK(judgeVersion("34.01.131", deployed).outdated);
  CHECK(judgeVersion("33.03.999", deployed).outdated);
  CHECK_FALSE(judgeVersion("34.01.132", deployed).outdated);
  CHECK_FALSE(judgeVersion("34.1.132", deployed).outdated);
  CHECK_FALSE(judgeVersion("34.02.001", deployed).outdated);
  CHECK(versionKey(*parseReportedVersion("34.1.99")) < versionKey(deployed));
  CHECK(versionKey(*parseReportedVersion("999999.999999.999999")) > versionKey(deployed));
}

TEST_CASE("compatibleVersion: not newer and at most three major releases behind", "[version]") {
  const DefenderVersion deployed{34, 1, 132};
  CHECK(judgeVersion("34.01.132", deployed).compatibleVersion);
  CHECK(judgeVersion("31.00.001", deployed).compatibleVersion);
  CHECK_FALSE(judgeVersion("30.03.122", deployed).compatibleVersion);
  CHECK_FALSE(judgeVersion("34.01.133", deployed).compatibleVersion);
  CHECK_FALSE(judgeVersion("35.00.001", deployed).compatibleVersion);
}

TEST_CASE("Unparseable reported versions are neither outdated nor compatible", "[version]") {
  const DefenderVersion deployed{34, 1, 132};
  for (const char* text : {"", "dev", "34.01", "34.01.132-rc1", " 34.01.132", "v30.00.001",
                           "1234567.0.0", "30.0.0.1", "٣٤.01.132"}) {
    INFO(text);
    const auto j = judgeVersion(text, deployed);
    CHECK_FALSE(j.outdated);
    CHECK_FALSE(j.compatibleVersion);
  }
}

TEST_CASE("Prometheus label values and HELP text are escaped per the text format") {
  CHECK(prometheus::escapeLabelValue(R"(a\b"c)"
                                     "\nd") == R"(a\\b\"c\nd)");
  CHECK(prometheus::escapeLabelValue("plain") == "plain");
  CHECK(prometheus::escapeHelp("say \"hi\"\\\nnext") == R"(say "hi"\\\nnext)");
}

TEST_CASE("Prometheus values: integers exactly, doubles round-trip, special values spelled") {
  CHECK(prometheus::formatValue(0) == "0");
  CHECK(prometheus::formatValue(0.25) == "0.25");
  CHECK(prometheus::formatValue(1.5e-3) == "0.0015");
  CHECK(prometheus::formatValue(std::numeric_limits<double>::infinity()) == "+Inf");
  CHECK(prometheus::formatValue(-std::numeric_limits<double>::infinity()) == "-Inf");
  CHECK(prometheus::formatValue(std::numeric_limits<double>::quiet_NaN()) == "NaN");
}

TEST_CASE("Prometheus writer: families with HELP and TYPE, labelled samples, histograms") {
  prometheus::Writer w;
  w.counter("dc_things_total", "Things.", uint64_t{18446744073709551615u});
  w.gauge("dc_lag_seconds", "Lag.\nSecond line.", 0.5);
  w.family("dc_defenders", "By state.", prometheus::Type::kGauge)
      .sample({{"category", "Con\"tainer"}, {"state", "a\\b"}}, 3)
      .sample({{"category", "Host"}, {"state", "x\ny"}}, size_t{4});
  w.family("dc_latency_seconds", "Latency.", prometheus::Type::kHistogram)
      .histogram({{"route", "list"}}, {{0.1, 2}, {1, 5}}, 2.75, 6);
  CHECK(w.text() ==
        "# HELP dc_things_total Things.\n"
        "# TYPE dc_things_total counter\n"
        "dc_things_total 18446744073709551615\n"
        "# HELP dc_lag_seconds Lag.\\nSecond line.\n"
        "# TYPE dc_lag_seconds gauge\n"
        "dc_lag_seconds 0.5\n"
        "# HELP dc_defenders By state.\n"
        "# TYPE dc_defenders gauge\n"
        "dc_defenders{category=\"Con\\\"tainer\",state=\"a\\\\b\"} 3\n"
        "dc_defenders{category=\"Host\",state=\"x\\ny\"} 4\n"
        "# HELP dc_latency_seconds Latency.\n"
        "# TYPE dc_latency_seconds histogram\n"
        "dc_latency_seconds_bucket{route=\"list\",le=\"0.1\"} 2\n"
        "dc_latency_seconds_bucket{route=\"list\",le=\"1\"} 5\n"
        "dc_latency_seconds_bucket{route=\"list\",le=\"+Inf\"} 6\n"
        "dc_latency_seconds_sum{route=\"list\"} 2.75\n"
        "dc_latency_seconds_count{route=\"list\"} 6\n");
}

TEST_CASE("the one error body: code, err, field when set, message, and problems when given") {
  CHECK(errorJson(Error::invalid("invalid_parameter", "limit", "limit: must be a whole number")) ==
        R"({"code":"invalid_parameter","err":"limit: must be a whole number","field":"limit",)"
        R"("message":"limit: must be a whole number"})");
  CHECK(errorJson(Error::internal("internal error")) ==
        R"({"code":"internal","err":"internal error","message":"internal error"})");
  const Error first = Error::invalid("duplicate_key", "family", "family: given twice");
  CHECK(
      errorJson(first, {first, Error::invalid("invalid_family", "", "bad")}) ==
      R"({"code":"duplicate_key","err":"family: given twice","field":"family",)"
      R"("message":"family: given twice","problems":[{"code":"duplicate_key","field":"family",)"
      R"("message":"family: given twice"},{"code":"invalid_family","field":"","message":"bad"}]})");
  // Invalid UTF-8 is replaced, never thrown.
  CHECK(errorJson(Error::invalid("x", "", "bad \xff byte")).find("\xef\xbf\xbd") !=
        std::string::npos);
}
