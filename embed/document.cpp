#include "embed/document.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "common/utf8.h"

namespace dc::embed {

// ---------------------------------------------------------------------------------------------
// Node

Node Node::boolean(bool b) {
  Node n;
  n.kind = Kind::kBool;
  n.text = b ? "true" : "false";
  return n;
}

Node Node::number(std::string literal) {
  Node n;
  n.kind = Kind::kNumber;
  n.text = std::move(literal);
  return n;
}

Node Node::string(std::string s) {
  Node n;
  n.kind = Kind::kString;
  n.quoted = plainScalarIsNotString(s);
  n.text = std::move(s);
  return n;
}

Node Node::array() {
  return array(std::vector<Node>());
}

Node Node::array(std::vector<Node> items) {
  Node n;
  n.kind = Kind::kArray;
  n.items = std::move(items);
  return n;
}

Node Node::object() {
  Node n;
  n.kind = Kind::kObject;
  return n;
}

const Node* Node::find(std::string_view key) const {
  if (kind != Kind::kObject) return nullptr;
  for (const auto& m : members)
    if (m.key == key) return &m.value;
  return nullptr;
}

Node* Node::find(std::string_view key) {
  return const_cast<Node*>(static_cast<const Node*>(this)->find(key));
}

Node& Node::set(std::string_view key, Node value) {
  assert(kind == Kind::kObject);
  if (Node* existing = find(key)) {
    *existing = std::move(value);
    return *existing;
  }
  members.push_back(Member{std::string(key), std::move(value), false, 0});
  return members.back().value;
}

bool Node::erase(std::string_view key) {
  auto it =
      std::find_if(members.begin(), members.end(), [&](const Member& m) { return m.key == key; });
  if (it == members.end()) return false;
  members.erase(it);
  return true;
}

bool operator==(const Node& a, const Node& b) {
  if (a.kind != b.kind || a.text != b.text || a.tag != b.tag) return false;
  if (a.items.size() != b.items.size() || a.members.size() != b.members.size()) return false;
  for (size_t i = 0; i < a.items.size(); ++i)
    if (!(a.items[i] == b.items[i])) return false;
  for (size_t i = 0; i < a.members.size(); ++i)
    if (a.members[i].key != b.members[i].key || !(a.members[i].value == b.members[i].value))
      return false;
  return true;
}

// ---------------------------------------------------------------------------------------------
// YAML plain-scalar resolution

namespace {

bool oneOf(std::string_view s, std::initializer_list<std::string_view> options) {
  return std::find(options.begin(), options.end(), s) != options.end();
}

bool isYamlNull(std::string_view s) {
  return oneOf(s, {"", "~", "null", "Null", "NULL"});
}

bool isYamlBool(std::string_view s) {
  return oneOf(s,
               {"true", "True", "TRUE", "false", "False", "FALSE", "yes", "Yes", "YES", "no", "No",
                "NO",   "on",   "On",   "ON",    "off",   "Off",   "OFF", "y",   "Y",   "n",  "N"});
}

bool isYamlNumber(std::string_view s) {
  if (s.empty()) return false;
  const char c = s[0];
  if (!(std::isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '+' || c == '.'))
    return false;
  // YAML 1.2 core and YAML 1.1 int/float forms (1.1 allows '_' separators and base 60).
  static const std::regex number(R"(^[-+]?[0-9][0-9_]*$)"
                                 R"(|^0o?[0-7_]+$|^0x[0-9a-fA-F_]+$|^0b[01_]+$)"
                                 R"(|^[-+]?[1-9][0-9_]*(:[0-5]?[0-9])+(\.[0-9_]*)?$)"
                                 R"(|^[-+]?([0-9][0-9_]*)?\.[0-9_]*([eE][-+]?[0-9]+)?$)"
                                 R"(|^[-+]?[0-9][0-9_]*(\.[0-9_]*)?[eE][-+]?[0-9]+$)"
                                 R"(|^[-+]?\.(inf|Inf|INF)$|^\.(nan|NaN|NAN)$)");
  if (s == "." || s == "-" || s == "+") return false;
  return std::regex_match(s.begin(), s.end(), number);
}

Node::Kind resolvePlain(std::string_view s) {
  if (isYamlNull(s)) return Node::Kind::kNull;
  if (isYamlBool(s)) return Node::Kind::kBool;
  if (isYamlNumber(s)) return Node::Kind::kNumber;
  return Node::Kind::kString;
}

}  // namespace

bool plainScalarIsNotString(std::string_view text) {
  if (resolvePlain(text) != Node::Kind::kString) return true;
  // Conservative extra rule for output: anything that starts like a number or a date
  // (e.g. "2010-09-09", "1:2:3", "0x") is quoted so no YAML reader can take it for one.
  const char c = text[0];
  if (std::isdigit(static_cast<unsigned char>(c))) return true;
  if ((c == '-' || c == '+' || c == '.') && text.size() > 1 &&
      (std::isdigit(static_cast<unsigned char>(text[1])) || text[1] == '.'))
    return true;
  return false;
}

// ---------------------------------------------------------------------------------------------
// JSON parsing (nlohmann SAX; its parser is iterative, so depth is bounded by us, not the stack)

namespace {

std::string lineColumn(std::string_view text, size_t position) {
  position = std::min(position, text.size());
  size_t line = 1, column = 1;
  for (size_t i = 0; i + 1 < position; ++i) {
    if (text[i] == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  return "line " + std::to_string(line) + ", column " + std::to_string(column);
}

/// Appends `.key` or `[i]` segments; keys that are not identifiers are written ["key"].
std::string joinPath(const std::string& base, std::string_view key) {
  bool simple = !key.empty();
  for (char c : key)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == ':'))
      simple = false;
  if (simple) return base.empty() ? std::string(key) : base + "." + std::string(key);
  return base + "[" +
         nlohmann::json(std::string(key))
             .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) +
         "]";
}

class JsonBuilder {
 public:
  JsonBuilder(std::string_view text, const ParseLimits& limits, std::vector<Error>* duplicates)
      : text_(text), limits_(limits), duplicates_(duplicates) {}

  bool null() { return value(Node::null()); }
  bool boolean(bool b) { return value(Node::boolean(b)); }
  bool number_integer(std::int64_t v) { return value(Node::number(std::to_string(v))); }
  bool number_unsigned(std::uint64_t v) { return value(Node::number(std::to_string(v))); }
  bool number_float(double, const std::string& literal) { return value(Node::number(literal)); }
  bool string(std::string& s) {
    Node n;
    n.kind = Node::Kind::kString;
    n.text = std::move(s);
    return value(std::move(n));
  }
  bool binary(nlohmann::json::binary_t&) { return false; }
  bool start_object(std::size_t) { return open(Node::object()); }
  bool start_array(std::size_t) { return open(Node::array()); }
  bool key(std::string& k) {
    Frame& f = stack_.back();
    if (!f.keys.insert(k).second) {
      const std::string path = joinPath(f.path, k);
      Error e = Error::invalid("duplicate_key", path, path + ": duplicate key \"" + k + "\"");
      if (!duplicates_) {
        error_ = std::move(e);
        return false;
      }
      duplicates_->push_back(std::move(e));
      f.skipValue = true;  // the first value stays
    }
    f.key = std::move(k);
    return true;
  }
  bool end_object() { return close(); }
  bool end_array() { return close(); }
  bool parse_error(std::size_t position, const std::string&,
                   const nlohmann::detail::exception& ex) {
    if (!error_) {
      std::string what = ex.what();
      // nlohmann messages look like "[json.exception.parse_error.101] parse error at line 1,
      // column 2: syntax error while parsing value - ..."; keep the part after the prefix.
      if (auto p = what.find("] "); p != std::string::npos) what = what.substr(p + 2);
      error_ = Error::invalid("invalid_json", "",
                              "invalid JSON at " + lineColumn(text_, position) + ": " + what);
    }
    return false;
  }

  std::optional<Error> error_;
  std::optional<Node> root_;

 private:
  struct Frame {
    Node node;
    std::string path;
    std::string key;
    std::unordered_set<std::string> keys;
    bool skipValue = false;  // the value of a repeated key: dropped
  };

  std::string childPath() const {
    if (stack_.empty()) return "";
    const Frame& f = stack_.back();
    if (f.node.isArray()) return f.path + "[" + std::to_string(f.node.items.size()) + "]";
    return joinPath(f.path, f.key);
  }

  bool open(Node n) {
    if (stack_.size() >= limits_.maxDepth) {
      const std::string path = childPath();
      error_ = Error::invalid("too_deep", path,
                              (path.empty() ? std::string("document") : path) +
                                  ": nesting deeper than " + std::to_string(limits_.maxDepth) +
                                  " levels");
      return false;
    }
    if (++nodes_ > limits_.maxNodes) return tooMany();
    stack_.push_back(Frame{std::move(n), childPath(), {}, {}, false});
    return true;
  }

  bool close() {
    Node n = std::move(stack_.back().node);
    stack_.pop_back();
    return attach(std::move(n));
  }

  bool value(Node n) {
    if (++nodes_ > limits_.maxNodes) return tooMany();
    return attach(std::move(n));
  }

  bool attach(Node n) {
    if (stack_.empty()) {
      root_ = std::move(n);
      return true;
    }
    Frame& f = stack_.back();
    if (f.node.isArray()) {
      f.node.items.push_back(std::move(n));
    } else {
      if (!f.skipValue) f.node.members.push_back(Member{std::move(f.key), std::move(n), false, 0});
      f.skipValue = false;
      f.key.clear();
    }
    return true;
  }

  bool tooMany() {
    error_ = Error{ErrorKind::kTooLarge, "too_large",
                   "document has more than " + std::to_string(limits_.maxNodes) + " values", ""};
    return false;
  }

  std::string_view text_;
  const ParseLimits& limits_;
  std::vector<Error>* duplicates_;
  std::vector<Frame> stack_;
  size_t nodes_ = 0;
};

Status checkSize(std::string_view text, const ParseLimits& limits) {
  if (text.size() > limits.maxBytes)
    return Error{ErrorKind::kTooLarge, "too_large",
                 "request body is " + std::to_string(text.size()) + " bytes; the limit is " +
                     std::to_string(limits.maxBytes),
                 ""};
  if (text.find_first_not_of(" \t\r\n") == std::string_view::npos)
    return Error::invalid("empty_input", "", "the request body is empty");
  return Status::success();
}

}  // namespace

Result<Node> parseJson(std::string_view text, const ParseLimits& limits,
                       std::vector<Error>* duplicateKeys) {
  if (auto st = checkSize(text, limits); !st.ok()) return st.error();
  JsonBuilder builder(text, limits, duplicateKeys);
  bool ok = false;
  try {
    ok = nlohmann::json::sax_parse(text.begin(), text.end(), &builder);
  } catch (const std::exception& e) {
    // sax_parse reports errors through parse_error; this is only a safety net.
    return Error::invalid("invalid_json", "", std::string("invalid JSON: ") + e.what());
  }
  if (!ok || !builder.root_) {
    if (builder.error_) return *builder.error_;
    return Error::invalid("invalid_json", "", "invalid JSON");
  }
  return std::move(*builder.root_);
}

// ---------------------------------------------------------------------------------------------
// YAML parsing (yaml-cpp event API: it reports tags and whether a scalar was plain, which the
// YAML::Node API loses; yaml-cpp does not reject duplicate keys, so we do)

namespace {

constexpr size_t kMaxYamlKeyBytes = 255;

struct YamlAbort {};

std::string atLine(int line) {
  return "line " + std::to_string(line);
}

class YamlBuilder final : public YAML::EventHandler {
 public:
  YamlBuilder(const ParseLimits& limits, std::vector<Error>* duplicates)
      : limits_(limits), duplicates_(duplicates) {}

  void OnDocumentStart(const YAML::Mark& mark) override {
    if (++documents_ > 1)
      fail(Error::invalid(
          "multiple_documents", "",
          atLine(mark.line + 1) + ": a second YAML document starts here; send one document"));
  }
  void OnDocumentEnd() override {}

  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    Node n;
    n.line = mark.line + 1;
    count(n);
    deliver(std::move(n), anchor);
  }

  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    auto it = anchors_.find(anchor);
    if (it == anchors_.end())
      fail(Error::invalid("invalid_yaml", "", atLine(mark.line + 1) + ": unknown alias"));
    Node copy = it->second;
    countTree(copy);
    deliver(std::move(copy), 0);
  }

  void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                const std::string& value) override {
    checkUtf8(mark, tag);
    checkUtf8(mark, value);
    Node n;
    n.line = mark.line + 1;
    n.text = value;
    if (tag == "?") {
      n.kind = resolvePlain(value);
      if (n.kind == Node::Kind::kNull) n.text.clear();
    } else if (tag == "!" || tag == "tag:yaml.org,2002:str") {
      n.kind = Node::Kind::kString;
      n.quoted = true;
    } else {
      n.tag = tag;
      if (tag == "tag:yaml.org,2002:int" || tag == "tag:yaml.org,2002:float")
        n.kind = Node::Kind::kNumber;
      else if (tag == "tag:yaml.org,2002:bool")
        n.kind = Node::Kind::kBool;
      else
        n.kind = Node::Kind::kString;
    }
    count(n);
    deliver(std::move(n), anchor);
  }

  void OnSequenceStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    checkUtf8(mark, tag);
    open(Node::array(), mark, tag, anchor);
  }
  void OnSequenceEnd() override { close(); }
  void OnMapStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    checkUtf8(mark, tag);
    open(Node::object(), mark, tag, anchor);
  }
  void OnMapEnd() override { close(); }

  std::optional<Error> error_;
  std::optional<Node> root_;
  int documents_ = 0;

 private:
  struct Frame {
    Node node;
    YAML::anchor_t anchor = 0;
    bool haveKey = false;
    std::string key;
    bool keyQuoted = false;
    int keyLine = 0;
    std::unordered_set<std::string> keys;
    bool skipValue = false;   // the value of a repeated key: dropped
    bool mergeValue = false;  // the value of a merge key `<<`
    /// Merged mappings with the member index where their `<<` stood, in source order.
    std::vector<std::pair<size_t, Node>> merges;
  };

  // yaml-cpp passes the bytes of a UTF-8 stream through unchecked, and its emitter writes U+FFFD
  // for what is not UTF-8 and for noncharacters, so accepted text must be neither to survive a
  // round trip.
  void checkUtf8(const YAML::Mark& mark, const std::string& text) {
    if (!isValidUtf8(text))
      fail(Error::invalid("invalid_yaml", "",
                          atLine(mark.line + 1) + ": text is not valid UTF-8 (YAML is Unicode)"));
    if (hasNoncharacter(text))
      fail(Error::invalid("invalid_yaml", "",
                          atLine(mark.line + 1) +
                              ": text holds a Unicode noncharacter (U+FFFE, U+FFFF, "
                              "U+FDD0..U+FDEF, ...), which YAML does not allow"));
  }
  [[noreturn]] void fail(Error e) {
    error_ = std::move(e);
    throw YamlAbort{};
  }

  void tooLarge(const std::string& what) {
    fail(Error{ErrorKind::kTooLarge, "too_large",
               "document is too large after expanding YAML aliases (" + what + ")", ""});
  }

  void count(const Node& n) {
    if (++nodes_ > limits_.maxNodes)
      tooLarge("more than " + std::to_string(limits_.maxNodes) + " values");
    bytes_ += n.text.size();
    if (bytes_ > limits_.maxExpandedBytes)
      tooLarge("more than " + std::to_string(limits_.maxExpandedBytes) + " bytes of text");
  }

  void countTree(const Node& n) {
    count(n);
    for (const auto& i : n.items) countTree(i);
    for (const auto& m : n.members) {
      bytes_ += m.key.size();
      countTree(m.value);
    }
  }

  void open(Node n, const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor) {
    n.line = mark.line + 1;
    if (tag != "?" && tag != "!") n.tag = tag;
    if (stack_.size() >= limits_.maxDepth)
      fail(Error::invalid("too_deep", "",
                          atLine(n.line) + ": nesting deeper than " +
                              std::to_string(limits_.maxDepth) + " levels"));
    if (!stack_.empty() && stack_.back().node.isObject() && !stack_.back().haveKey)
      fail(Error::invalid("unsupported_yaml", "",
                          atLine(n.line) + ": mapping keys must be plain strings"));
    count(n);
    stack_.push_back(Frame{std::move(n), anchor, false, {}, false, 0, {}, false, false, {}});
  }

  void close() {
    Frame f = std::move(stack_.back());
    stack_.pop_back();
    if (!f.merges.empty()) applyMerges(f);
    deliver(std::move(f.node), f.anchor);
  }

  /// Inserts the merged mappings' members where their `<<` stood: keys of the mapping itself
  /// win, then the first merged mapping that has the key.
  static void applyMerges(Frame& f) {
    std::unordered_set<std::string> present;
    for (const auto& m : f.node.members) present.insert(m.key);
    std::vector<Member> out;
    size_t next = 0;
    for (auto& [at, source] : f.merges) {
      while (next < at) out.push_back(std::move(f.node.members[next++]));
      for (auto& m : source.members)
        if (present.insert(m.key).second) out.push_back(std::move(m));
    }
    while (next < f.node.members.size()) out.push_back(std::move(f.node.members[next++]));
    f.node.members = std::move(out);
  }

  /// The value of `<<`: a mapping, or a list of mappings (earlier ones win).
  void addMerge(Frame& f, Node value) {
    const auto bad = [&] {
      fail(Error::invalid(
          "unsupported_yaml", "",
          atLine(value.line) + ": a merge key (<<) needs a mapping or a list of mappings"));
    };
    const size_t at = f.node.members.size();
    if (value.isObject() && value.tag.empty()) {
      f.merges.emplace_back(at, std::move(value));
      return;
    }
    if (!value.isArray() || !value.tag.empty()) bad();
    for (auto& item : value.items) {
      if (!item.isObject() || !item.tag.empty()) bad();
      f.merges.emplace_back(at, std::move(item));
    }
  }

  void deliver(Node n, YAML::anchor_t anchor) {
    if (anchor != 0) anchors_[anchor] = n;
    if (stack_.empty()) {
      root_ = std::move(n);
      return;
    }
    Frame& f = stack_.back();
    if (f.node.isArray()) {
      f.node.items.push_back(std::move(n));
      return;
    }
    if (!f.haveKey) {
      if (n.isArray() || n.isObject() || !n.tag.empty())
        fail(Error::invalid("unsupported_yaml", "",
                            atLine(n.line) + ": mapping keys must be plain strings"));
      // YAML limits an implicit key to 1024 characters as written; an escaped byte takes up to
      // 4, so keys are held to 255 bytes (also CloudFormation's limit for logical IDs), or the
      // protected document could not be read back.
      if (n.text.size() > kMaxYamlKeyBytes)
        fail(Error::invalid("invalid_yaml", "",
                            atLine(n.line) + ": a mapping key longer than " +
                                std::to_string(kMaxYamlKeyBytes) + " bytes"));
      if (!f.keys.insert(n.text).second) {
        Error e = Error::invalid("duplicate_key", "",
                                 atLine(n.line) + ": duplicate key \"" + n.text + "\"");
        if (!duplicates_) fail(std::move(e));
        duplicates_->push_back(std::move(e));
        f.skipValue = true;  // the first value stays
      }
      // `<<` as a plain scalar is a merge key (YAML 1.1); quoted it is an ordinary key.
      f.mergeValue = !f.skipValue && n.text == "<<" && !n.quoted && n.kind == Node::Kind::kString;
      f.haveKey = true;
      f.key = std::move(n.text);
      f.keyQuoted = n.quoted;
      f.keyLine = n.line;
      return;
    }
    if (f.mergeValue)
      addMerge(f, std::move(n));
    else if (!f.skipValue)
      f.node.members.push_back(Member{std::move(f.key), std::move(n), f.keyQuoted, f.keyLine});
    f.haveKey = false;
    f.skipValue = false;
    f.mergeValue = false;
    f.key.clear();
  }

  const ParseLimits& limits_;
  std::vector<Error>* duplicates_;
  std::vector<Frame> stack_;
  std::unordered_map<YAML::anchor_t, Node> anchors_;
  size_t nodes_ = 0;
  size_t bytes_ = 0;
};

}  // namespace

Result<Node> parseYaml(std::string_view text, const ParseLimits& limits,
                       std::vector<Error>* duplicateKeys) {
  if (auto st = checkSize(text, limits); !st.ok()) return st.error();
  std::istringstream in{std::string(text)};
  YamlBuilder builder(limits, duplicateKeys);
  try {
    YAML::Parser parser(in);
    while (parser.HandleNextDocument(builder)) {
    }
  } catch (const YamlAbort&) {
    return *builder.error_;
  } catch (const YAML::Exception& e) {
    return Error::invalid("invalid_yaml", "",
                          "invalid YAML at line " + std::to_string(e.mark.line + 1) + ", column " +
                              std::to_string(e.mark.column + 1) + ": " + e.msg);
  } catch (const std::exception& e) {
    return Error::invalid("invalid_yaml", "", std::string("invalid YAML: ") + e.what());
  }
  if (!builder.root_) return Error::invalid("empty_input", "", "the YAML document is empty");
  return std::move(*builder.root_);
}

// ---------------------------------------------------------------------------------------------
// JSON output

namespace {

void writeJsonString(std::string& out, std::string_view s) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}

void writeJson(std::string& out, const Node& n, int indent, bool pretty) {
  if (n.tag.size() > 1 && n.tag[0] == '!') {
    // A YAML short-form intrinsic: write its long form.
    const std::string t = n.tag.substr(1);
    Node inner = n;
    inner.tag.clear();
    Node wrapper = Node::object();
    wrapper.members.push_back(
        Member{(t == "Ref" || t == "Condition") ? t : "Fn::" + t, std::move(inner), false, 0});
    writeJson(out, wrapper, indent, pretty);
    return;
  }
  const auto newline = [&](int level) {
    if (!pretty) return;
    out += '\n';
    out.append(static_cast<size_t>(level) * 2, ' ');
  };
  switch (n.kind) {
    case Node::Kind::kNull:
      out += "null";
      break;
    case Node::Kind::kBool:
    case Node::Kind::kNumber:
      out += n.text;
      break;
    case Node::Kind::kString:
      writeJsonString(out, n.text);
      break;
    case Node::Kind::kArray:
      if (n.items.empty()) {
        out += "[]";
        break;
      }
      out += '[';
      for (size_t i = 0; i < n.items.size(); ++i) {
        if (i) out += ',';
        newline(indent + 1);
        writeJson(out, n.items[i], indent + 1, pretty);
      }
      newline(indent);
      out += ']';
      break;
    case Node::Kind::kObject:
      if (n.members.empty()) {
        out += "{}";
        break;
      }
      out += '{';
      for (size_t i = 0; i < n.members.size(); ++i) {
        if (i) out += ',';
        newline(indent + 1);
        writeJsonString(out, n.members[i].key);
        out += pretty ? ": " : ":";
        writeJson(out, n.members[i].value, indent + 1, pretty);
      }
      newline(indent);
      out += '}';
      break;
  }
}

}  // namespace

std::string toJson(const Node& node) {
  std::string out;
  writeJson(out, node, 0, true);
  out += '\n';
  return out;
}

std::string toCompactJson(const Node& node) {
  std::string out;
  writeJson(out, node, 0, false);
  return out;
}

size_t compactJsonSize(const Node& node) {
  return toCompactJson(node).size();
}

// ---------------------------------------------------------------------------------------------
// YAML output

namespace {

void emitTag(YAML::Emitter& out, const std::string& tag) {
  static constexpr std::string_view kCore = "tag:yaml.org,2002:";
  if (tag.rfind(kCore, 0) == 0)
    out << YAML::SecondaryTag(tag.substr(kCore.size()));
  else if (!tag.empty() && tag[0] == '!')
    out << YAML::LocalTag(tag.substr(1));
  else
    out << YAML::VerbatimTag(tag);
}

bool needsDoubleQuotes(std::string_view s) {
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7f) return true;
  return false;
}

void emitScalarString(YAML::Emitter& out, const std::string& s, bool quoted) {
  if (needsDoubleQuotes(s))
    out << YAML::DoubleQuoted << s;
  else if (quoted || s.empty())
    out << YAML::SingleQuoted << s;
  else
    out << s;  // plain when yaml-cpp deems it a valid plain scalar, else quoted: a string either
               // way
}

void emitYaml(YAML::Emitter& out, const Node& n) {
  if (!n.tag.empty()) emitTag(out, n.tag);
  switch (n.kind) {
    case Node::Kind::kNull:
      out << YAML::Null;
      break;
    case Node::Kind::kBool:
    case Node::Kind::kNumber:
      out << n.text;
      break;
    case Node::Kind::kString:
      emitScalarString(out, n.text, n.quoted);
      break;
    case Node::Kind::kArray:
      out << YAML::BeginSeq;
      for (const auto& i : n.items) emitYaml(out, i);
      out << YAML::EndSeq;
      break;
    case Node::Kind::kObject:
      out << YAML::BeginMap;
      for (const auto& m : n.members) {
        out << YAML::Key;
        emitScalarString(out, m.key, m.keyQuoted);
        out << YAML::Value;
        emitYaml(out, m.value);
      }
      out << YAML::EndMap;
      break;
  }
}

}  // namespace

std::string toYaml(const Node& node) {
  YAML::Emitter out;
  out.SetIndent(2);
  emitYaml(out, node);
  std::string s = out.c_str();
  if (!out.good()) return {};
  s += '\n';
  return s;
}

}  // namespace dc::embed
