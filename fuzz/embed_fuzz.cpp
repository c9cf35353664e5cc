// Fuzz target: the task-definition transformer (embed/) on untrusted text. Each input is parsed
// both as JSON (parseJson) and as YAML (parseYaml, through yaml-cpp), so one corpus covers
// native ECS JSON, describe-task-definition output and CloudFormation JSON and YAML; every
// document that parses is embedded (embedDefender) with entrypoint extraction on, against a
// fixed set of known images.
//
// Properties beyond "no crash":
//  - a parsed document written back in its format (toJson / toYaml) parses to the same tree;
//  - a successful transform issues one App ID per protected task definition, each
//    `<family>:<uuid>` with the generated UUID; at each issued path the container lists hold
//    exactly one sidecar (`TwistlockDefender`, last, its environment starting with the vendor's
//    INSTALL_BUNDLE, DEFENDER_TYPE, FARGATE_TASK, WS_ADDRESS) and every original container's
//    entrypoint starts with the launcher; a task definition reported as skipped is unchanged;
//  - the output, written in the input's format, parses again to the same tree;
//  - embedding the output again is refused as already_protected (409);
//  - every refusal has a code and a message.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>

#include "embed/document.h"
#include "embed/transform.h"
#include "fuzz/fuzz_check.h"

using namespace dc;
using namespace dc::embed;

namespace {

enum class Format { kJson, kYaml };

std::string write(const Node& n, Format f) {
  return f == Format::kJson ? toJson(n) : toYaml(n);
}

Result<Node> parse(std::string_view text, Format f) {
  return f == Format::kJson ? parseJson(text) : parseYaml(text);
}

TransformDeps deps() {
  TransformDeps d;
  d.lookupImage = [](std::string_view image,
                     std::string_view) -> Result<std::optional<ImageConfig>> {
    if (image.find("nginx") != std::string_view::npos)
      return std::optional<ImageConfig>(ImageConfig{{"/docker-entrypoint.sh"}, {"nginx"}});
    if (image.find("busybox") != std::string_view::npos)
      return std::optional<ImageConfig>(ImageConfig{{}, {"sh"}});
    if (image == "storage-down")
      return Error{ErrorKind::kUnavailable, "storage_unavailable", "storage down", "image"};
    return std::optional<ImageConfig>();
  };
  auto n = std::make_shared<int>(0);
  d.newUuid = [n] {
    char buf[64];
    std::snprintf(buf, sizeof buf, "00000000-0000-4000-8000-%012d", ++*n);
    return std::string(buf);
  };
  return d;
}

EmbedOptions options() {
  EmbedOptions o;
  o.consoleHost = "console.example.com";
  o.sidecarImage = "defender-console/fargate-defender:0.1.0";
  o.extractEntrypoint = true;
  return o;
}

bool isSidecar(const Node& n) {
  if (!n.isObject()) return false;
  const Node* name = n.find("name");
  if (!name) name = n.find("Name");
  return name && name->isString() && name->text == kSidecarName;
}

bool hasNameKey(const Node& n) {
  return n.isObject() && (n.find("name") || n.find("Name"));
}

/// The sidecar's environment starts with the vendor's four entries, in order.
void checkVendorEnvironment(const Node& sidecar) {
  const Node* env = sidecar.find("environment");
  if (!env) env = sidecar.find("Environment");
  DC_FUZZ_CHECK(env != nullptr && env->isArray() && env->items.size() >= 4);
  const char* vendor[] = {"INSTALL_BUNDLE", "DEFENDER_TYPE", "FARGATE_TASK", "WS_ADDRESS"};
  for (size_t i = 0; i < 4; ++i) {
    const Node* name = env->items[i].find("name");
    if (!name) name = env->items[i].find("Name");
    DC_FUZZ_CHECK(name != nullptr && name->text == vendor[i]);
  }
}

/// Walks the value of containerDefinitions (a list, or intrinsics choosing between lists):
/// every array whose elements are containers must hold exactly one sidecar, placed last, and
/// every other container must start its entrypoint with the launcher (unless the entrypoint
/// is an intrinsic). Returns the sidecars seen.
size_t checkContainerLists(const Node& n) {
  if (n.isArray()) {
    bool isList = false;
    for (const auto& item : n.items) isList = isList || hasNameKey(item);
    if (!isList) {
      size_t seen = 0;
      for (const auto& item : n.items) seen += checkContainerLists(item);
      return seen;
    }
    size_t sidecars = 0;
    for (const auto& item : n.items) sidecars += isSidecar(item) ? 1 : 0;
    DC_FUZZ_CHECK(sidecars == 1);
    DC_FUZZ_CHECK(isSidecar(n.items.back()));
    checkVendorEnvironment(n.items.back());
    for (const auto& c : n.items) {
      if (isSidecar(c) || !c.isObject() || !hasNameKey(c)) continue;
      const Node* ep = c.find("entryPoint");
      if (!ep) ep = c.find("EntryPoint");
      DC_FUZZ_CHECK(ep != nullptr);
      if (intrinsicName(*ep)) continue;  // e.g. !If: each branch is rewritten
      DC_FUZZ_CHECK(ep->isArray() && ep->items.size() >= kLauncherArgv.size());
      for (size_t i = 0; i < kLauncherArgv.size(); ++i)
        DC_FUZZ_CHECK(ep->items[i].isString() && ep->items[i].text == kLauncherArgv[i]);
    }
    return 1;
  }
  size_t seen = 0;
  if (n.isObject())
    for (const auto& m : n.members) seen += checkContainerLists(m.value);
  return seen;
}

/// The task definition an issued path names: "" (the document), "Properties", or
/// "Resources.<logical id>.Properties".
const Node* definitionAt(const Node& doc, const std::string& path) {
  if (path.empty()) return &doc;
  if (path == "Properties") return doc.find("Properties");
  const std::string prefix = "Resources.", suffix = ".Properties";
  DC_FUZZ_CHECK(path.size() > prefix.size() + suffix.size());
  DC_FUZZ_CHECK(path.compare(0, prefix.size(), prefix) == 0);
  DC_FUZZ_CHECK(path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0);
  const Node* resources = doc.find("Resources");
  DC_FUZZ_CHECK(resources != nullptr);
  const Node* resource =
      resources->find(path.substr(prefix.size(), path.size() - prefix.size() - suffix.size()));
  DC_FUZZ_CHECK(resource != nullptr);
  return resource->find("Properties");
}

void roundTrip(const Node& doc, Format f) {
  const std::string text = write(doc, f);
  DC_FUZZ_CHECK(!text.empty());
  // Alias expansion can make the written form larger than any input the parser accepts.
  if (text.size() > ParseLimits{}.maxBytes) return;
  auto again = parse(text, f);
  if (!again.ok())
    std::fprintf(stderr, "re-parse failed: %s\n%s\n", again.error().message.c_str(), text.c_str());
  DC_FUZZ_CHECK(again.ok());
  DC_FUZZ_CHECK(*again == doc);
}

void embedOne(const Node& doc, Format f) {
  roundTrip(doc, f);
  auto result = embedDefender(doc, options(), deps());
  if (!result.ok()) {
    DC_FUZZ_CHECK(!result.error().code.empty());
    DC_FUZZ_CHECK(!result.error().message.empty());
    return;
  }
  DC_FUZZ_CHECK(!result->issued.empty());
  int n = 0;
  for (const auto& issued : result->issued) {
    char uuid[64];
    std::snprintf(uuid, sizeof uuid, "00000000-0000-4000-8000-%012d", ++n);
    DC_FUZZ_CHECK(issued.uuid == uuid);
    DC_FUZZ_CHECK(issued.appId == issued.family + ":" + issued.uuid);
    const Node* def = definitionAt(result->document, issued.path);
    DC_FUZZ_CHECK(def != nullptr && def->isObject());
    const Node* lists = def->find("containerDefinitions");
    if (!lists) lists = def->find("ContainerDefinitions");
    DC_FUZZ_CHECK(lists != nullptr);
    DC_FUZZ_CHECK(checkContainerLists(*lists) >= 1);
  }
  for (const auto& skipped : result->skipped) {
    const Node* before = definitionAt(doc, skipped.path);
    const Node* after = definitionAt(result->document, skipped.path);
    DC_FUZZ_CHECK(before != nullptr && after != nullptr && *before == *after);
  }
  roundTrip(result->document, f);

  auto twice = embedDefender(result->document, options(), deps());
  DC_FUZZ_CHECK(!twice.ok());
  DC_FUZZ_CHECK(twice.error().code == "already_protected");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  for (Format f : {Format::kJson, Format::kYaml}) {
    auto doc = parse(text, f);
    if (!doc.ok()) {
      DC_FUZZ_CHECK(!doc.error().code.empty());
      DC_FUZZ_CHECK(!doc.error().message.empty());
      continue;
    }
    embedOne(*doc, f);
  }
  return 0;
}
