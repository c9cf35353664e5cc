// The document model: faithful JSON/YAML round trips and the parse limits.
#include <catch2/catch.hpp>

#include "embed/document.h"
#include "embed/transform.h"

using namespace dc;
using namespace dc::embed;

TEST_CASE("JSON round trip keeps key order, number literals and escapes", "[embed][document]") {
  const std::string in = R"({"z":1,"a":[1.50,-0.0,1e3,18446744073709551615,-9223372036854775808],)"
                         R"("s":"tab\t\"q\" \\ \u0001 é 🚀","t":true,"n":null,"e":{},"l":[]})";
  auto doc = parseJson(in);
  REQUIRE(doc.ok());
  CHECK(doc->members[0].key == "z");
  CHECK(doc->members[1].value.items[0].text == "1.50");
  CHECK(doc->members[1].value.items[2].text == "1e3");
  CHECK(doc->members[2].value.text == "tab\t\"q\" \\ \x01 é 🚀");
  CHECK(toCompactJson(*doc) ==
        R"({"z":1,"a":[1.50,-0.0,1e3,18446744073709551615,-9223372036854775808],)"
        R"("s":"tab\t\"q\" \\ \u0001 é 🚀","t":true,"n":null,"e":{},"l":[]})");
  auto again = parseJson(toJson(*doc));
  REQUIRE(again.ok());
  CHECK(*again == *doc);
}

TEST_CASE("JSON errors name the line or the path", "[embed][document]") {
  auto bad = parseJson("{\n  \"a\": [1,\n  2,,\n]}");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().code == "invalid_json");
  CHECK_THAT(bad.error().message, Catch::Contains("line 3"));

  auto dup = parseJson(R"({"a":{"b":[{"c":1,"c":2}]}})");
  REQUIRE_FALSE(dup.ok());
  CHECK(dup.error().code == "duplicate_key");
  CHECK(dup.error().field == "a.b[0].c");

  // Same key in sibling objects is fine.
  CHECK(parseJson(R"([{"c":1},{"c":2}])").ok());

  ParseLimits limits;
  limits.maxDepth = 3;
  CHECK(parseJson("[[[]]]", limits).ok());
  auto deep = parseJson("[[[[]]]]", limits);
  REQUIRE_FALSE(deep.ok());
  CHECK(deep.error().code == "too_deep");

  limits = {};
  limits.maxBytes = 10;
  auto big = parseJson(R"({"a":"0123456789"})", limits);
  REQUIRE_FALSE(big.ok());
  CHECK(big.error().kind == ErrorKind::kTooLarge);

  CHECK(parseJson("").error().code == "empty_input");
  CHECK(parseJson("{} {}").error().code == "invalid_json");
}

TEST_CASE("YAML keeps short-form tags, quoting that carries type, and key order",
          "[embed][document]") {
  const std::string in = R"(b: !Ref Param
a: !Sub '${AWS::StackName}-x'
octal: '0755'
yes_string: 'yes'
yes_bool: yes
num: 0755
on: off
nothing: ~
empty:
list: !Join ['', [!Ref A, "-", !GetAtt R.Arn]]
block: |
  two
  lines
'quoted key': 1
)";
  auto doc = parseYaml(in);
  REQUIRE(doc.ok());
  std::vector<std::string> keys;
  for (const auto& m : doc->members) keys.push_back(m.key);
  CHECK(keys == std::vector<std::string>{"b", "a", "octal", "yes_string", "yes_bool", "num", "on",
                                         "nothing", "empty", "list", "block", "quoted key"});
  CHECK(doc->find("b")->tag == "!Ref");
  CHECK(intrinsicName(*doc->find("b")) == "Ref");
  CHECK(intrinsicName(*doc->find("list")) == "Fn::Join");
  CHECK(doc->find("octal")->kind == Node::Kind::kString);
  CHECK(doc->find("yes_string")->kind == Node::Kind::kString);
  CHECK(doc->find("yes_bool")->kind == Node::Kind::kBool);
  CHECK(doc->find("num")->kind == Node::Kind::kNumber);
  CHECK(doc->find("nothing")->isNull());
  CHECK(doc->find("empty")->isNull());
  CHECK(doc->find("block")->text == "two\nlines\n");

  const std::string out = toYaml(*doc);
  CHECK_THAT(out, Catch::Contains("b: !Ref Param"));
  CHECK_THAT(out, Catch::Contains("octal: '0755'"));
  CHECK_THAT(out, Catch::Contains("yes_string: 'yes'"));
  CHECK_THAT(out, Catch::Contains("yes_bool: yes"));
  CHECK_THAT(out, Catch::Contains("num: 0755"));
  CHECK_THAT(out, Catch::Contains("!GetAtt R.Arn"));
  auto again = parseYaml(out);
  REQUIRE(again.ok());
  CHECK(*again == *doc);

  // In JSON form the short tags become long-form intrinsics.
  CHECK_THAT(toCompactJson(*doc), Catch::Contains(R"("b":{"Ref":"Param"})"));
  CHECK_THAT(toCompactJson(*doc), Catch::Contains(R"("list":{"Fn::Join":["",[{"Ref":"A"})"));
}

TEST_CASE("strings created for YAML output are quoted when plain would change their type",
          "[embed][document]") {
  for (const char* s : {"0755", "yes", "No", "on", "null", "~", "1e3", "0x1F", "1:20", ".inf",
                        "2010-09-09", "true", "-1", ""}) {
    INFO(s);
    Node doc = Node::object();
    doc.set("v", Node::string(s));
    auto back = parseYaml(toYaml(doc));
    REQUIRE(back.ok());
    CHECK(back->find("v")->kind == Node::Kind::kString);
    CHECK(back->find("v")->text == s);
  }
  CHECK_FALSE(plainScalarIsNotString("web-1"));
  CHECK_FALSE(plainScalarIsNotString("arn:aws:iam::1:role/x"));
}

TEST_CASE("YAML errors name the line; limits hold against aliases and nesting",
          "[embed][document]") {
  auto dup = parseYaml("a: 1\nb:\n  c: 1\n  c: 2\n");
  REQUIRE_FALSE(dup.ok());
  CHECK(dup.error().code == "duplicate_key");
  CHECK_THAT(dup.error().message, Catch::Contains("line 4"));

  auto bad = parseYaml("a: [1, 2\nb: 3\n");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().code == "invalid_yaml");
  CHECK_THAT(bad.error().message, Catch::Contains("line"));

  CHECK(parseYaml("? [a, b]\n: 1\n").error().code == "unsupported_yaml");
  CHECK(parseYaml("a: 1\n---\nb: 2\n").error().code == "multiple_documents");
  CHECK(parseYaml("# only a comment\n").error().code == "empty_input");

  // Aliases expand (they are legal YAML) but are counted against the limits.
  auto alias = parseYaml("base: &b {x: 1}\ncopy: *b\n");
  REQUIRE(alias.ok());
  CHECK(*alias->find("copy") == *alias->find("base"));
  ParseLimits limits;
  limits.maxNodes = 50;
  auto laughs =
      parseYaml("a: &a [x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a]\nc: [*b, *b]\n", limits);
  REQUIRE_FALSE(laughs.ok());
  CHECK(laughs.error().kind == ErrorKind::kTooLarge);

  std::string deep = "a: " + std::string(100, '[') + std::string(100, ']') + "\n";
  CHECK(parseYaml(deep).error().code == "too_deep");
}

TEST_CASE("YAML text that is not UTF-8, or holds noncharacters, is refused with its line",
          "[embed][document]") {
  // yaml-cpp passes such bytes through and its emitter replaces them, so accepting them would
  // write back a different document (found by fuzz_embed).
  for (const std::string text : {"family: ok\nname: bad\xff\n", "family: ok\nname: \xed\xa0\x80\n",
                                 "family: ok\n\xc0\xaf: x\n"}) {
    auto r = parseYaml(text);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == "invalid_yaml");
    CHECK_THAT(r.error().message, Catch::Contains("line 2") && Catch::Contains("UTF-8"));
  }
  CHECK(parseYaml("family: ok\nname: !t\xfe x\n").error().code == "invalid_yaml");  // in a tag
  // Noncharacters are valid UTF-8 but not YAML text (the emitter would replace them).
  auto nonchar = parseYaml("family: ok\nname: a\xef\xbf\xbf\n");
  REQUIRE_FALSE(nonchar.ok());
  CHECK(nonchar.error().code == "invalid_yaml");
  CHECK_THAT(nonchar.error().message, Catch::Contains("line 2") && Catch::Contains("noncharacter"));
  auto ok = parseYaml("family: caf\xc3\xa9\nname: \xf0\x9f\x9b\xa1\n");
  REQUIRE(ok.ok());
  CHECK(ok->find("family")->text == "caf\xc3\xa9");
  CHECK(*parseYaml(toYaml(*ok)) == *ok);
}

TEST_CASE("YAML merge keys are applied; explicit keys and earlier merges win", "[embed][yaml]") {
  auto doc = parseYaml(
      "a: &a {x: 1, y: 2}\n"
      "b: &b {y: 3, z: 4}\n"
      "c:\n  w: 0\n  <<: [*a, *b]\n  x: 9\n"
      "d: {'<<': 1}\n");
  REQUIRE(doc.ok());
  const Node* c = doc->find("c");
  REQUIRE(c);
  std::vector<std::string> keys;
  for (const auto& m : c->members) keys.push_back(m.key + "=" + m.value.text);
  // y from the first merged mapping, x written in the mapping itself, in the place of `<<`.
  CHECK(keys == std::vector<std::string>{"w=0", "y=2", "z=4", "x=9"});
  // A quoted '<<' is an ordinary key.
  REQUIRE(doc->find("d"));
  CHECK(doc->find("d")->find("<<") != nullptr);

  auto bad = parseYaml("a:\n  <<: 5\n");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().code == "unsupported_yaml");
  CHECK_THAT(bad.error().message, Catch::Contains("line 2"));
}

TEST_CASE("duplicate keys can be collected instead of ending the parse", "[embed][yaml][json]") {
  std::vector<Error> dups;
  auto json = parseJson(R"({"a": 1, "a": 2, "b": {"c": 1, "c": 3}})", {}, &dups);
  REQUIRE(json.ok());
  REQUIRE(dups.size() == 2);
  CHECK(dups[0].field == "a");
  CHECK(dups[1].field == "b.c");
  CHECK(json->find("a")->text == "1");  // the first value stays
  CHECK(json->find("b")->members.size() == 1);

  dups.clear();
  auto yaml = parseYaml("a: 1\nb: 2\na: 3\n", {}, &dups);
  REQUIRE(yaml.ok());
  REQUIRE(dups.size() == 1);
  CHECK_THAT(dups[0].message, Catch::Contains("line 3"));
  CHECK(yaml->find("a")->text == "1");
  // Without the collector a duplicate is still an error.
  CHECK(parseYaml("a: 1\na: 3\n").error().code == "duplicate_key");
}
