// A format-neutral document tree for task definitions and CloudFormation templates.
//
// The embed flow reads JSON or YAML, rewrites a few fields and writes the same format back. A
// generic tree (rather than nlohmann::json or YAML::Node) keeps what both formats need for a
// faithful round trip: key order, number literals as written, YAML tags (`!Ref`, `!Sub`, ...) and
// whether a YAML scalar was quoted (so `'0755'` or `'yes'` stay strings).
//
// Parsing enforces limits before and during the parse (size, nesting, node count, alias
// expansion) and rejects duplicate keys; every failure is an Error with a stable code whose
// message names the path (JSON) or the line (YAML). Nothing here throws.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace dc::embed {

struct Member;

/// One value of a JSON or YAML document.
struct Node {
  enum class Kind { kNull, kBool, kNumber, kString, kArray, kObject };

  Kind kind = Kind::kNull;
  /// Scalar text: the string value, the number literal as written, or the boolean as written
  /// (YAML `yes` stays `yes`). Empty for null and containers.
  std::string text;
  /// YAML only: the scalar was quoted (or block) in the source, or must be quoted on output to
  /// stay a string. Presentation only; ignored by operator==.
  bool quoted = false;
  /// YAML tag as reported by the parser: "!Ref", "!Sub", "tag:yaml.org,2002:str"; empty if none.
  std::string tag;
  /// 1-based source line (YAML input); 0 when unknown (JSON input, generated nodes).
  int line = 0;
  std::vector<Node> items;      // kArray
  std::vector<Member> members;  // kObject, in document order

  static Node null();
  static Node boolean(bool b);
  static Node number(std::string literal);
  /// A string. For YAML output it is quoted when a plain scalar would read as another type.
  static Node string(std::string s);
  static Node array();  // empty
  static Node array(std::vector<Node> items);
  static Node object();

  bool isNull() const { return kind == Kind::kNull; }
  bool isString() const { return kind == Kind::kString; }
  bool isArray() const { return kind == Kind::kArray; }
  bool isObject() const { return kind == Kind::kObject; }

  /// The member `key` of an object, or nullptr (also for non-objects).
  const Node* find(std::string_view key) const;
  Node* find(std::string_view key);
  /// Sets `key` in place when present, else appends it. Requires an object.
  Node& set(std::string_view key, Node value);
  /// Removes `key` when present; returns whether it was.
  bool erase(std::string_view key);

  /// Structural equality: kind, scalar text, tag, items, member keys and values in order.
  friend bool operator==(const Node& a, const Node& b);
};

struct Member {
  std::string key;
  Node value;
  bool keyQuoted = false;
  int line = 0;
};

// Defined here, where Member is complete: returning a Node needs std::vector<Member>'s
// destructor (Clang instantiates it eagerly).
inline Node Node::null() {
  return {};
}

/// Limits applied while parsing untrusted input. Defaults fit any real task definition or
/// template (CloudFormation itself caps templates at 1 MB).
struct ParseLimits {
  size_t maxBytes = 1024 * 1024;              // input size, checked before parsing ("too_large")
  size_t maxDepth = 64;                       // nesting of arrays/objects ("too_deep")
  size_t maxNodes = 200000;                   // values after YAML alias expansion ("too_large")
  size_t maxExpandedBytes = 8 * 1024 * 1024;  // scalar bytes after alias expansion ("too_large")
};

/// Parses one JSON document (RFC 8259, UTF-8). Errors: "empty_input", "too_large" (413),
/// "invalid_json" (message has line and column), "duplicate_key", "too_deep".
/// With `duplicateKeys`, a repeated key is not an error: each is recorded there as a
/// "duplicate_key" Error (path and message), its first value is kept, and parsing goes on.
Result<Node> parseJson(std::string_view text, const ParseLimits& limits = {},
                       std::vector<Error>* duplicateKeys = nullptr);

/// Parses one YAML document with yaml-cpp, keeping tags and quoting. Errors: "empty_input",
/// "too_large" (413), "invalid_yaml" (message has the line; also text that is not valid UTF-8),
/// "duplicate_key", "too_deep", "multiple_documents", "unsupported_yaml" (non-scalar or tagged
/// mapping keys, a merge key `<<` whose value is not a mapping or a list of mappings).
/// Anchors and aliases are expanded (each alias is a copy, counted against the limits); merge
/// keys (`<<: *base`, YAML 1.1) are applied: the merged mappings' keys are inserted where `<<`
/// stood, keys written in the mapping itself win, and among merged mappings the first wins.
/// `duplicateKeys` as for parseJson (the message has the line).
Result<Node> parseYaml(std::string_view text, const ParseLimits& limits = {},
                       std::vector<Error>* duplicateKeys = nullptr);

/// Pretty JSON (2-space indent, key order kept, number literals as written), ending in '\n'.
/// YAML local tags (only possible in a tree parsed from YAML) are written in long form.
std::string toJson(const Node& node);
/// Compact JSON (no whitespace). YAML short-form tags are written in long form
/// (`!Ref x` -> {"Ref":"x"}, `!Sub s` -> {"Fn::Sub":"s"}).
std::string toCompactJson(const Node& node);
/// Compact JSON size in bytes (no whitespace), as ECS measures a register request.
size_t compactJsonSize(const Node& node);
/// Block-style YAML, key order, tags and string quoting kept, ending in '\n'. Empty only if the
/// emitter fails (a bug).
std::string toYaml(const Node& node);

/// True when a plain (unquoted) YAML scalar with this text would be read as something other
/// than a string under YAML 1.1 or 1.2 (null, booleans incl. yes/no/on/off, numbers incl.
/// octal/hex/sexagesimal-looking, timestamps-looking).
bool plainScalarIsNotString(std::string_view text);

}  // namespace dc::embed
