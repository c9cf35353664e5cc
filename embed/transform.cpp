#include "embed/transform.h"

#include <algorithm>
#include <set>

#include "appid/app_id.h"
#include "auth/crypto.h"

namespace dc::embed {

namespace {

/// Field names in the two spellings: native ECS JSON (camelCase) and CloudFormation (PascalCase).
struct Keys {
  bool cloudFormation;
  const char* family;
  const char* containerDefinitions;
  const char* networkMode;
  const char* requiresCompatibilities;
  const char* runtimePlatform;
  const char* operatingSystemFamily;
  const char* name;
  const char* image;
  const char* essential;
  const char* entryPoint;
  const char* command;
  const char* environment;
  const char* value;
  const char* volumesFrom;
  const char* sourceContainer;
  const char* readOnly;
  const char* dependsOn;
  const char* containerName;
  const char* condition;
  const char* linuxParameters;
  const char* capabilities;
  const char* add;
  const char* healthCheck;
  const char* interval;
  const char* timeout;
  const char* retries;
  const char* startPeriod;
  const char* stopTimeout;
};

constexpr Keys kNativeKeys{false,
                           "family",
                           "containerDefinitions",
                           "networkMode",
                           "requiresCompatibilities",
                           "runtimePlatform",
                           "operatingSystemFamily",
                           "name",
                           "image",
                           "essential",
                           "entryPoint",
                           "command",
                           "environment",
                           "value",
                           "volumesFrom",
                           "sourceContainer",
                           "readOnly",
                           "dependsOn",
                           "containerName",
                           "condition",
                           "linuxParameters",
                           "capabilities",
                           "add",
                           "healthCheck",
                           "interval",
                           "timeout",
                           "retries",
                           "startPeriod",
                           "stopTimeout"};

constexpr Keys kCfnKeys{true,
                        "Family",
                        "ContainerDefinitions",
                        "NetworkMode",
                        "RequiresCompatibilities",
                        "RuntimePlatform",
                        "OperatingSystemFamily",
                        "Name",
                        "Image",
                        "Essential",
                        "EntryPoint",
                        "Command",
                        "Environment",
                        "Value",
                        "VolumesFrom",
                        "SourceContainer",
                        "ReadOnly",
                        "DependsOn",
                        "ContainerName",
                        "Condition",
                        "LinuxParameters",
                        "Capabilities",
                        "Add",
                        "HealthCheck",
                        "Interval",
                        "Timeout",
                        "Retries",
                        "StartPeriod",
                        "StopTimeout"};

/// Top-level members of a RegisterTaskDefinition request (ECS API reference,
/// RegisterTaskDefinition "Request Syntax"). Anything else at the top of a native task
/// definition (the read-only fields of describe-task-definition output such as
/// taskDefinitionArn, revision, status, ...) is refused by AWS, so it is dropped and reported.
const std::set<std::string, std::less<>> kRegisterFields = {"family",
                                                            "taskRoleArn",
                                                            "executionRoleArn",
                                                            "networkMode",
                                                            "containerDefinitions",
                                                            "volumes",
                                                            "placementConstraints",
                                                            "requiresCompatibilities",
                                                            "cpu",
                                                            "memory",
                                                            "tags",
                                                            "pidMode",
                                                            "ipcMode",
                                                            "proxyConfiguration",
                                                            "inferenceAccelerators",
                                                            "ephemeralStorage",
                                                            "runtimePlatform",
                                                            "enableFaultInjection"};

/// Properties of AWS::ECS::TaskDefinition (CloudFormation resource reference).
const std::set<std::string, std::less<>> kCfnProperties = {"ContainerDefinitions",
                                                           "Cpu",
                                                           "EnableFaultInjection",
                                                           "EphemeralStorage",
                                                           "ExecutionRoleArn",
                                                           "Family",
                                                           "InferenceAccelerators",
                                                           "IpcMode",
                                                           "Memory",
                                                           "NetworkMode",
                                                           "PidMode",
                                                           "PlacementConstraints",
                                                           "ProxyConfiguration",
                                                           "RequiresCompatibilities",
                                                           "RuntimePlatform",
                                                           "Tags",
                                                           "TaskRoleArn",
                                                           "Volumes"};

/// Fargate's largest container stopTimeout (seconds; ECS ContainerDefinition.stopTimeout).
/// The sidecar gets it so it is never stopped before an app it protects.
constexpr int kSidecarStopTimeoutSeconds = 120;

/// Codes that mean "this task definition cannot run on Fargate": in a template such a task
/// definition is left as it is and reported as skipped.
bool isNotFargate(const Error& e) {
  return e.code == "not_fargate" || e.code == "windows_not_supported";
}

std::string child(const std::string& path, std::string_view key) {
  return path.empty() ? std::string(key) : path + "." + std::string(key);
}
std::string index(const std::string& path, size_t i) {
  return path + "[" + std::to_string(i) + "]";
}

std::string where(const std::string& path, const Node* node) {
  std::string s = path.empty() ? std::string("document") : path;
  if (node && node->line > 0) s += " (line " + std::to_string(node->line) + ")";
  return s;
}

Error invalid(std::string code, const std::string& path, const Node* node,
              const std::string& message) {
  return Error::invalid(std::move(code), path, where(path, node) + ": " + message);
}

std::string_view kindName(const Node& n) {
  switch (n.kind) {
    case Node::Kind::kNull:
      return "null";
    case Node::Kind::kBool:
      return "a boolean";
    case Node::Kind::kNumber:
      return "a number";
    case Node::Kind::kString:
      return "a string";
    case Node::Kind::kArray:
      return "an array";
    case Node::Kind::kObject:
      return "an object";
  }
  return "?";
}

Error wrongType(const std::string& path, const Node& n, std::string_view expected) {
  std::string hint;
  if (n.line > 0 && n.kind != Node::Kind::kString && n.items.empty() && n.members.empty())
    hint = " (quote it in YAML to make it a string)";
  return invalid("invalid_type", path, &n,
                 "expected " + std::string(expected) + ", got " + std::string(kindName(n)) +
                     (expected.find("string") != std::string_view::npos ? hint : ""));
}

const std::set<std::string, std::less<>> kShortTags = {
    "Ref",         "Condition", "Base64", "Cidr",  "FindInMap", "GetAtt",       "GetAZs",
    "ImportValue", "Join",      "Select", "Split", "Sub",       "Transform",    "And",
    "Equals",      "If",        "Not",    "Or",    "Length",    "ToJsonString", "ForEach"};

Node stringArray(const std::vector<std::string>& v) {
  Node a = Node::array();
  for (const auto& s : v) a.items.push_back(Node::string(s));
  return a;
}

bool isNoValue(const Node& n) {
  auto name = intrinsicName(n);
  if (!name || *name != "Ref") return false;
  if (!n.tag.empty()) return n.isString() && n.text == "AWS::NoValue";
  const Node& arg = n.members[0].value;
  return arg.isString() && arg.text == "AWS::NoValue";
}

/// The arguments of an intrinsic, whatever its form (tag or long form).
Node& intrinsicArgs(Node& n) {
  return n.tag.empty() ? n.members[0].value : n;
}
std::string intrinsicArgsPath(const Node& n, const std::string& path) {
  return n.tag.empty() ? child(path, n.members[0].key) : path;
}

bool isValidContainerName(std::string_view s) {
  if (s.empty() || s.size() > 255) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
  });
}

/// A container together with where it is.
struct ContainerRef {
  Node* node;
  std::string path;
  bool inConditional;  // a branch of an element-level Fn::If
};

/// One list of containers that will run together (a Fn::If over the whole list yields two).
struct ContainerList {
  Node* list;
  std::string path;
  std::vector<ContainerRef> containers;
  size_t maxRunning = 0;  // element count: a conditional element counts as one container
};

class Embedder {
 public:
  Embedder(const EmbedOptions& options, const TransformDeps& deps)
      : options_(options), deps_(deps) {}

  Result<TransformResult> run(Node document) {
    TransformResult result;
    if (!document.isObject()) return wrongType("", document, "an object");

    std::vector<std::pair<Node*, std::string>> definitions;  // properties, path
    const Keys* keys = &kNativeKeys;
    if (Node* resources = document.find("Resources")) {
      result.kind = InputKind::kCloudFormationTemplate;
      keys = &kCfnKeys;
      if (!resources->isObject()) return wrongType("Resources", *resources, "an object");
      for (auto& m : resources->members) {
        const std::string path = child("Resources", m.key);
        if (!m.value.isObject()) return wrongType(path, m.value, "an object (a resource)");
        const Node* type = m.value.find("Type");
        if (!type || !type->isString() || type->text != "AWS::ECS::TaskDefinition") continue;
        Node* props = m.value.find("Properties");
        if (!props)
          return invalid("missing_field", child(path, "Properties"), &m.value,
                         "a task definition resource needs Properties");
        definitions.emplace_back(props, child(path, "Properties"));
      }
      if (definitions.empty())
        return invalid("no_task_definition", "Resources", resources,
                       "the template has no resource of Type AWS::ECS::TaskDefinition");
    } else if (const Node* type = document.find("Type")) {
      result.kind = InputKind::kCloudFormationResource;
      keys = &kCfnKeys;
      if (!type->isString() || type->text != "AWS::ECS::TaskDefinition")
        return invalid("no_task_definition", "Type", type,
                       "expected a resource of Type AWS::ECS::TaskDefinition");
      Node* props = document.find("Properties");
      if (!props)
        return invalid("missing_field", "Properties", &document,
                       "a task definition resource needs Properties");
      definitions.emplace_back(props, "Properties");
    } else if (Node* wrapped = document.find("taskDefinition")) {
      result.kind = InputKind::kDescribeOutput;
      if (!wrapped->isObject()) return wrongType("taskDefinition", *wrapped, "an object");
      if (auto st = unwrapDescribeOutput(document); !st.ok()) return st.error();
      definitions.emplace_back(&document, "");
    } else if (document.find("containerDefinitions")) {
      result.kind = InputKind::kNative;
      definitions.emplace_back(&document, "");
    } else if (document.find("ContainerDefinitions")) {
      result.kind = InputKind::kCloudFormationProperties;
      keys = &kCfnKeys;
      definitions.emplace_back(&document, "");
    } else {
      return invalid("no_task_definition", "", &document,
                     "no task definition found: expected containerDefinitions (ECS JSON), "
                     "taskDefinition (describe-task-definition output), or a CloudFormation "
                     "AWS::ECS::TaskDefinition resource or template");
    }

    if (options_.cloudFormation && *options_.cloudFormation != keys->cloudFormation)
      return Error::invalid("format_mismatch", "cloudFormation",
                            std::string("cloudFormation=") +
                                (*options_.cloudFormation ? "true" : "false") +
                                " but the document is " +
                                (keys->cloudFormation ? "a CloudFormation template or resource"
                                                      : "a native ECS task definition"));

    cfn_ = keys->cloudFormation;
    if (!keys->cloudFormation) keepRegisterFields(document, result);
    const bool isTemplate = result.kind == InputKind::kCloudFormationTemplate;
    for (auto& [props, path] : definitions) {
      const size_t before = problems_.size();
      auto issued = embedTaskDefinition(*props, path, *keys);
      if (conflict_) return *conflict_;
      if (issued) {
        result.issued.push_back(std::move(*issued));
      } else if (isTemplate && problems_.size() == before + 1 && isNotFargate(problems_.back())) {
        // Cannot run on Fargate: left as it was (nothing was changed before the check).
        result.skipped.push_back({path, std::move(problems_.back())});
        problems_.pop_back();
      }
    }
    if (problems_.empty() && result.issued.empty())
      for (const auto& s : result.skipped) problems_.push_back(s.reason);
    if (!problems_.empty()) return problems_.front();
    if (auto st = fillBundles(); !st.ok()) return st.error();
    result.document = std::move(document);
    return result;
  }

  const std::vector<Error>& problems() const { return problems_; }

 private:
  /// describe-task-definition output -> register input: the task definition plus the
  /// wrapper's tags (read-only fields go with the allow-list, keepRegisterFields).
  Status unwrapDescribeOutput(Node& document) {
    for (const auto& m : document.members) {
      if (m.key != "taskDefinition" && m.key != "tags")
        return invalid("invalid_type", m.key, &m.value,
                       "unexpected field in describe-task-definition output (expected only "
                       "taskDefinition and tags)");
    }
    Node unwrapped = std::move(*document.find("taskDefinition"));
    if (Node* tags = document.find("tags")) {
      if (!tags->isArray()) return wrongType("tags", *tags, "an array");
      if (!tags->items.empty()) {
        if (unwrapped.find("tags"))
          return invalid("invalid_type", "taskDefinition.tags", nullptr,
                         "tags appear both inside and outside taskDefinition");
        unwrapped.set("tags", std::move(*tags));
      }
    }
    document = std::move(unwrapped);
    return Status::success();
  }

  /// Keeps the top-level members RegisterTaskDefinition accepts and reports the others. A key
  /// in CloudFormation spelling (`Family`) is a problem, not something to drop silently.
  void keepRegisterFields(Node& td, TransformResult& result) {
    std::vector<Member> kept;
    for (auto& m : td.members) {
      if (kRegisterFields.count(m.key)) {
        kept.push_back(std::move(m));
        continue;
      }
      if (kRegisterFields.count(camel(m.key))) {
        problems_.push_back(invalid("invalid_type", m.key, &m.value,
                                    "unexpected field \"" + m.key +
                                        "\"; in ECS task definition JSON it is spelled \"" +
                                        camel(m.key) + "\""));
        kept.push_back(std::move(m));
        continue;
      }
      const bool readOnly = m.key == "taskDefinitionArn" || m.key == "revision" ||
                            m.key == "status" || m.key == "requiresAttributes" ||
                            m.key == "compatibilities" || m.key == "registeredAt" ||
                            m.key == "registeredBy" || m.key == "deregisteredAt";
      result.dropped.push_back({m.key, readOnly
                                           ? "read-only field of describe-task-definition output"
                                           : "not a RegisterTaskDefinition field"});
    }
    td.members = std::move(kept);
  }

  /// CloudFormation Properties holding a key in native spelling (`containerDefinitions`):
  /// CloudFormation would refuse it, and the real field would look missing.
  bool checkPropertyCase(const Node& props, const std::string& path) {
    bool ok = true;
    for (const auto& m : props.members) {
      if (m.key.empty() || !std::islower(static_cast<unsigned char>(m.key[0]))) continue;
      if (!kCfnProperties.count(pascal(m.key))) continue;
      problems_.push_back(invalid("invalid_type", child(path, m.key), &m.value,
                                  "unexpected field \"" + m.key +
                                      "\"; in CloudFormation it is spelled \"" + pascal(m.key) +
                                      "\""));
      ok = false;
    }
    return ok;
  }

  /// Records an error: a conflict (already protected) ends the run, anything else is one more
  /// problem. Returns nullopt so a failing check reads `return fail(...)`.
  std::optional<IssuedDefinition> fail(Error e) {
    if (e.kind == ErrorKind::kConflict) {
      if (!conflict_) conflict_ = std::move(e);
    } else {
      problems_.push_back(std::move(e));
    }
    return std::nullopt;
  }

  /// Protects one task definition; nullopt when it has problems (recorded in problems_).
  std::optional<IssuedDefinition> embedTaskDefinition(Node& props, const std::string& path,
                                                      const Keys& k) {
    if (!props.isObject()) return fail(wrongType(path, props, "an object (task definition)"));
    // A key in the other spelling is the problem to report, not the field it hides.
    if (k.cloudFormation && !checkPropertyCase(props, path)) return std::nullopt;

    // Windows first: its own clear error even when the rest would also fail.
    cpuArchitecture_.clear();
    if (const Node* platform = props.find(k.runtimePlatform)) {
      const std::string p = child(path, k.runtimePlatform);
      if (platform->isObject()) {
        const Node* arch = platform->find(k.cloudFormation ? "CpuArchitecture" : "cpuArchitecture");
        if (arch && arch->isString()) cpuArchitecture_ = arch->text;
        const Node* os = platform->find(k.operatingSystemFamily);
        if (os && os->isString() && os->text.rfind("WINDOWS", 0) == 0)
          return fail(invalid("windows_not_supported", child(p, k.operatingSystemFamily), os,
                              "Windows task definitions are not supported; the App-Embedded "
                              "Defender for Fargate runs on Linux"));
      } else if (!intrinsic(*platform)) {
        return fail(wrongType(p, *platform, "an object"));
      }
    }
    if (auto st = checkFargate(props, path, k); !st.ok()) return fail(st.error());

    // Family.
    IssuedDefinition issued;
    issued.path = path;
    const std::string familyPath = child(path, k.family);
    // A family problem does not stop the container checks: every problem is reported.
    const size_t before = problems_.size();
    const Node* family = props.find(k.family);
    Node familyNode = family ? *family : Node::null();
    if (!family) {
      // Written in the other spelling: already reported as such (keepRegisterFields).
      if (!props.find(k.cloudFormation ? camel(k.family) : pascal(k.family)))
        fail(invalid(k.cloudFormation ? "missing_family" : "missing_field", familyPath, &props,
                   std::string("the task definition needs a ") + k.family +
                       " (the App ID is <family>:<uuid>)"));
    } else if (family->isString() && family->tag.empty()) {
      if (auto st = appid::validateFamily(family->text, familyPath); !st.ok()) {
        Error e = st.error();
        e.message = where(familyPath, family) + ": " +
                    "task family may contain only letters, digits, '-' and '_' (1-255 "
                    "characters, ECS rule)";
        fail(std::move(e));
      }
      issued.family = family->text;
    } else if (intrinsic(*family)) {
      issued.family = toCompactJson(*family);
      issued.familyIsIntrinsic = true;
    } else {
      fail(wrongType(familyPath, *family, "a string"));
    }

    // Containers.
    const std::string listPath = child(path, k.containerDefinitions);
    Node* defs = props.find(k.containerDefinitions);
    if (!defs)
      return fail(
          invalid("missing_field", listPath, &props, "the task definition has no containers"));
    std::vector<ContainerList> lists;
    if (auto st = collectLists(*defs, listPath, k, lists); !st.ok()) return fail(st.error());
    for (auto& list : lists)
      if (auto st = checkNotProtected(list, k); !st.ok()) return fail(st.error());
    for (auto& list : lists) checkContainers(list, k);
    if (problems_.size() > before) return std::nullopt;

    issued.uuid = deps_.newUuid();
    issued.appId = issued.family + ":" + issued.uuid;

    for (auto& list : lists) {
      for (auto& c : list.containers)
        if (auto st = protectContainer(*c.node, c.path, k); !st.ok()) fail(st.error());
      list.list->items.push_back(sidecar(k, familyNode, issued));
    }
    if (problems_.size() > before) return std::nullopt;
    if (auto st = checkRegisterSize(props, path); !st.ok()) return fail(st.error());
    pending_.push_back({&props, path, &k, familyNode, issued});
    return issued;
  }

  static Status checkRegisterSize(const Node& props, const std::string& path) {
    const size_t size = compactJsonSize(props);
    if (size > kMaxRegisterBytes)
      return invalid("register_size_exceeded", path, &props,
                     "the protected task definition would be " + std::to_string(size) +
                         " bytes; ECS accepts at most " + std::to_string(kMaxRegisterBytes));
    return Status::success();
  }

  /// A protected task definition whose sidecars still wait for their INSTALL_BUNDLE.
  struct PendingBundle {
    Node* props;
    std::string path;
    const Keys* keys;
    Node family;
    IssuedDefinition issued;
  };

  /// Writes every INSTALL_BUNDLE once the whole document is known to be good: a bundle holds a
  /// newly issued credential, which a refused request must not leave behind. The size check is
  /// repeated with the bundle in place.
  Status fillBundles() {
    for (auto& p : pending_) {
      Node bundle = installBundle(p.family, p.issued);
      std::vector<ContainerList> lists;
      Node* defs = p.props->find(p.keys->containerDefinitions);
      if (auto st =
              collectLists(*defs, child(p.path, p.keys->containerDefinitions), *p.keys, lists);
          !st.ok())
        return st;
      for (auto& list : lists) {
        Node* env = list.list->items.back().find(p.keys->environment);
        env->items[0].set(p.keys->value, bundle);  // entry 0 is INSTALL_BUNDLE
      }
      if (auto st = checkRegisterSize(*p.props, p.path); !st.ok()) return st;
    }
    return Status::success();
  }

  Status checkFargate(const Node& props, const std::string& path, const Keys& k) {
    const std::string modePath = child(path, k.networkMode);
    const Node* mode = props.find(k.networkMode);
    if (!mode)
      return invalid("not_fargate", modePath, &props,
                     std::string("not a Fargate task definition: ") + k.networkMode +
                         " must be awsvpc (it is missing, so ECS uses bridge)");
    if (!intrinsic(*mode)) {
      if (!mode->isString()) return wrongType(modePath, *mode, "a string");
      if (mode->text != "awsvpc")
        return invalid("not_fargate", modePath, mode,
                       "not a Fargate task definition: network mode is \"" + mode->text +
                           "\", Fargate requires awsvpc");
    }
    const std::string compPath = child(path, k.requiresCompatibilities);
    const Node* comp = props.find(k.requiresCompatibilities);
    if (!comp)
      return invalid("not_fargate", compPath, &props,
                     std::string("not a Fargate task definition: ") + k.requiresCompatibilities +
                         " must include FARGATE");
    if (intrinsic(*comp)) return Status::success();
    if (!comp->isArray()) return wrongType(compPath, *comp, "an array of strings");
    bool fargate = false, dynamic = false;
    for (size_t i = 0; i < comp->items.size(); ++i) {
      const Node& item = comp->items[i];
      if (intrinsic(item)) {
        dynamic = true;
      } else if (!item.isString()) {
        return wrongType(index(compPath, i), item, "a string");
      } else if (item.text == "FARGATE") {
        fargate = true;
      }
    }
    if (!fargate && !dynamic)
      return invalid("not_fargate", compPath, comp,
                     "not a Fargate task definition: FARGATE is not among the required "
                     "compatibilities");
    return Status::success();
  }

  Status collectLists(Node& defs, const std::string& path, const Keys& k,
                      std::vector<ContainerList>& lists) {
    if (auto name = intrinsic(defs)) {
      if (*name != "Fn::If")
        return invalid("intrinsic_unsupported", path, &defs,
                       "containers given by " + *name +
                           " cannot be rewritten; list the containers (Fn::If is supported)");
      Node& args = intrinsicArgs(defs);
      const std::string argsPath = intrinsicArgsPath(defs, path);
      if (!args.isArray() || args.items.size() != 3)
        return wrongType(argsPath, args, "Fn::If arguments [condition, then, else]");
      for (size_t b = 1; b <= 2; ++b) {
        Node& branch = args.items[b];
        if (isNoValue(branch))
          return invalid("intrinsic_unsupported", index(argsPath, b), &branch,
                         "a task definition needs containers in both Fn::If branches");
        if (auto st = collectLists(branch, index(argsPath, b), k, lists); !st.ok()) return st;
      }
      return Status::success();
    }
    if (!defs.isArray()) return wrongType(path, defs, "an array of container definitions");
    if (defs.items.empty())
      return invalid("missing_field", path, &defs, "the task definition has no containers");
    ContainerList list{&defs, path, {}, defs.items.size()};
    for (size_t i = 0; i < defs.items.size(); ++i) {
      Node& item = defs.items[i];
      const std::string p = index(path, i);
      if (auto name = intrinsic(item)) {
        if (*name != "Fn::If")
          return invalid("intrinsic_unsupported", p, &item,
                         "a container given by " + *name +
                             " cannot be rewritten; write the container out (Fn::If is "
                             "supported)");
        Node& args = intrinsicArgs(item);
        const std::string argsPath = intrinsicArgsPath(item, p);
        if (!args.isArray() || args.items.size() != 3)
          return wrongType(argsPath, args, "Fn::If arguments [condition, then, else]");
        for (size_t b = 1; b <= 2; ++b) {
          Node& branch = args.items[b];
          if (isNoValue(branch)) continue;
          if (!branch.isObject() || intrinsic(branch))
            return wrongType(index(argsPath, b), branch, "a container definition or AWS::NoValue");
          list.containers.push_back({&branch, index(argsPath, b), true});
        }
        continue;
      }
      if (!item.isObject()) return wrongType(p, item, "an object (container definition)");
      list.containers.push_back({&item, p, false});
    }
    lists.push_back(std::move(list));
    return Status::success();
  }

  /// A protected input gets 409 whatever else is wrong with it, so this runs first.
  Status checkNotProtected(const ContainerList& list, const Keys& k) {
    for (const auto& c : list.containers)
      if (isProtected(*c.node, k))
        return Error{ErrorKind::kConflict, "already_protected",
                     where(c.path, c.node) +
                         ": the task definition is already protected (it has the " +
                         std::string(kSidecarName) +
                         " sidecar or launcher); embed into the original task definition",
                     c.path};
    return Status::success();
  }

  /// Records every problem of every container (names, spelling, count) in problems_.
  void checkContainers(const ContainerList& list, const Keys& k) {
    if (list.maxRunning + 1 > kMaxContainers)
      fail(invalid("too_many_containers", list.path, list.list,
                   "the task definition has " + std::to_string(list.maxRunning) +
                       " containers; with the Defender sidecar that exceeds the ECS limit of " +
                       std::to_string(kMaxContainers)));
    std::set<std::string, std::less<>> names;
    for (const auto& c : list.containers) {
      const Node& ct = *c.node;
      // Keys in the other spelling would be ignored by ECS/CloudFormation and defeat the rewrite.
      const Keys& other = k.cloudFormation ? kNativeKeys : kCfnKeys;
      for (const char* key : {other.entryPoint, other.command, other.image, other.name,
                              other.dependsOn, other.volumesFrom, other.linuxParameters}) {
        if (ct.find(key))
          fail(invalid("invalid_type", child(c.path, key), &ct,
                       std::string("unexpected field \"") + key + "\"; in " +
                           (k.cloudFormation ? "CloudFormation" : "ECS task definition JSON") +
                           " it is spelled \"" + (k.cloudFormation ? pascal(key) : camel(key)) +
                           "\""));
      }
      if (ct.find(other.name)) continue;  // the name is there, in the other spelling
      const std::string namePath = child(c.path, k.name);
      const Node* name = ct.find(k.name);
      if (!name) {
        fail(invalid("missing_field", namePath, &ct, "a container needs a name"));
        continue;
      }
      if (intrinsic(*name)) continue;
      if (!name->isString()) {
        fail(wrongType(namePath, *name, "a string"));
        continue;
      }
      if (!isValidContainerName(name->text))
        fail(invalid("invalid_container_name", namePath, name,
                     "container name \"" + name->text +
                         "\" must be 1-255 letters, digits, '-' or '_' (ECS rule)"));
      else if (!c.inConditional && !names.insert(name->text).second)
        fail(invalid("duplicate_container_name", namePath, name,
                     "container name \"" + name->text + "\" is used twice"));
    }
  }

  static std::string pascal(std::string s) {
    if (!s.empty()) s[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(s[0])));
    return s;
  }
  static std::string camel(std::string s) {
    if (!s.empty()) s[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(s[0])));
    return s;
  }

  static bool isProtected(const Node& ct, const Keys& k) {
    if (const Node* name = ct.find(k.name); name && name->isString() && name->text == kSidecarName)
      return true;
    if (const Node* ep = ct.find(k.entryPoint); ep && ep->isArray() && !ep->items.empty() &&
                                                ep->items[0].isString() &&
                                                ep->items[0].text == kLauncherArgv[0])
      return true;
    if (const Node* vf = ct.find(k.volumesFrom); vf && vf->isArray()) {
      for (const auto& v : vf->items) {
        const Node* src = v.find(k.sourceContainer);
        if (src && src->isString() && src->text == kSidecarName) return true;
      }
    }
    return false;
  }

  std::string containerLabel(const Node& ct, const Keys& k) {
    const Node* name = ct.find(k.name);
    return name && name->isString() ? "\"" + name->text + "\"" : "(unnamed)";
  }

  /// An array of argv strings (intrinsics allowed in CloudFormation); an error otherwise.
  Status checkArgv(const Node& argv, const std::string& path, const Keys& /*k*/) {
    if (!argv.isArray()) return wrongType(path, argv, "an array of strings");
    for (size_t i = 0; i < argv.items.size(); ++i) {
      const Node& a = argv.items[i];
      if (intrinsic(a)) continue;
      if (!a.isString()) return wrongType(index(path, i), a, "a string");
    }
    return Status::success();
  }

  Status prependLauncher(Node& argv, const std::string& path, const Keys& k) {
    if (auto name = intrinsic(argv)) {
      if (*name == "Fn::If") {
        Node& args = intrinsicArgs(argv);
        const std::string argsPath = intrinsicArgsPath(argv, path);
        if (!args.isArray() || args.items.size() != 3)
          return wrongType(argsPath, args, "Fn::If arguments [condition, then, else]");
        for (size_t b = 1; b <= 2; ++b) {
          if (isNoValue(args.items[b]))
            return invalid("intrinsic_unsupported", index(argsPath, b), &args.items[b],
                           "an entrypoint that may be AWS::NoValue cannot be rewritten; give "
                           "the entrypoint in both branches");
          if (auto st = prependLauncher(args.items[b], index(argsPath, b), k); !st.ok()) return st;
        }
        return Status::success();
      }
      return invalid("intrinsic_unsupported", path, &argv,
                     "an entrypoint computed by " + *name +
                         " cannot be rewritten safely; write it as a list of strings");
    }
    if (auto st = checkArgv(argv, path, k); !st.ok()) return st;
    if (argv.items.empty())
      return invalid("invalid_type", path, &argv, "entrypoint must not be empty here");
    std::vector<Node> items = stringArray(kLauncherArgv).items;
    for (auto& a : argv.items) items.push_back(std::move(a));
    argv.items = std::move(items);
    return Status::success();
  }

  static bool isEmptyArgv(const Node* n) {
    return !n || n->isNull() || (n->isArray() && n->items.empty() && n->tag.empty());
  }

  Status protectContainer(Node& ct, const std::string& path, const Keys& k) {
    // Entrypoint.
    const std::string epPath = child(path, k.entryPoint);
    Node* ep = ct.find(k.entryPoint);
    if (!isEmptyArgv(ep)) {
      if (auto st = prependLauncher(*ep, epPath, k); !st.ok()) return st;
    } else {
      if (auto st = entrypointFromImage(ct, path, k); !st.ok()) return st;
    }
    // Command: only checked, never changed here.
    if (const Node* cmd = ct.find(k.command); cmd && !cmd->isNull() && !intrinsic(*cmd))
      if (auto st = checkArgv(*cmd, child(path, k.command), k); !st.ok()) return st;

    // environment += TW_IMAGE_NAME, TW_CONTAINER_NAME (the vendor's layout; values as written,
    // intrinsics included).
    for (auto [var, key] :
         {std::pair{"TW_IMAGE_NAME", k.image}, std::pair{"TW_CONTAINER_NAME", k.name}}) {
      const Node* source = ct.find(key);
      if (!source) continue;  // no image: ECS refuses the container itself
      Node value = *source;
      value.line = 0;
      if (auto st = appendTo(ct, k.environment, path, env(k, var, std::move(value))); !st.ok())
        return st;
    }

    // volumesFrom += sidecar.
    Node vf = Node::object();
    vf.set(k.sourceContainer, Node::string(std::string(kSidecarName)));
    vf.set(k.readOnly, Node::boolean(false));
    if (auto st = appendTo(ct, k.volumesFrom, path, std::move(vf)); !st.ok()) return st;

    // dependsOn += {sidecar, START}.
    Node dep = Node::object();
    dep.set(k.containerName, Node::string(std::string(kSidecarName)));
    dep.set(k.condition, Node::string("START"));
    if (auto st = appendTo(ct, k.dependsOn, path, std::move(dep)); !st.ok()) return st;

    // linuxParameters.capabilities.add += SYS_PTRACE (once).
    const std::string lpPath = child(path, k.linuxParameters);
    Node* lp = ct.find(k.linuxParameters);
    if (!lp || lp->isNull()) lp = &ct.set(k.linuxParameters, Node::object());
    if (intrinsic(*lp))
      return invalid("intrinsic_unsupported", lpPath, lp,
                     "linuxParameters computed by an intrinsic cannot be extended with "
                     "SYS_PTRACE; write the object out");
    if (!lp->isObject()) return wrongType(lpPath, *lp, "an object");
    const std::string capPath = child(lpPath, k.capabilities);
    Node* caps = lp->find(k.capabilities);
    if (!caps || caps->isNull()) caps = &lp->set(k.capabilities, Node::object());
    if (intrinsic(*caps))
      return invalid("intrinsic_unsupported", capPath, caps,
                     "capabilities computed by an intrinsic cannot be extended with SYS_PTRACE");
    if (!caps->isObject()) return wrongType(capPath, *caps, "an object");
    const std::string addPath = child(capPath, k.add);
    Node* add = caps->find(k.add);
    if (!add || add->isNull()) add = &caps->set(k.add, Node::array());
    if (intrinsic(*add))
      return invalid("intrinsic_unsupported", addPath, add,
                     "capabilities.add computed by an intrinsic cannot be extended with "
                     "SYS_PTRACE");
    if (auto st = checkArgv(*add, addPath, k); !st.ok()) return st;
    const bool present = std::any_of(add->items.begin(), add->items.end(), [](const Node& n) {
      return n.isString() && n.tag.empty() && n.text == "SYS_PTRACE";
    });
    if (!present) add->items.push_back(Node::string("SYS_PTRACE"));
    return Status::success();
  }

  Status appendTo(Node& ct, const char* key, const std::string& path, Node item) {
    const std::string p = child(path, key);
    Node* list = ct.find(key);
    if (!list || list->isNull()) list = &ct.set(key, Node::array());
    if (intrinsic(*list))
      return invalid("intrinsic_unsupported", p, list,
                     std::string(key) +
                         " computed by an intrinsic cannot be extended with the sidecar; write "
                         "the list out");
    if (!list->isArray()) return wrongType(p, *list, "an array");
    list->items.push_back(std::move(item));
    return Status::success();
  }

  Status entrypointFromImage(Node& ct, const std::string& path, const Keys& k) {
    const std::string label = containerLabel(ct, k);
    const std::string epPath = child(path, k.entryPoint);
    const std::string howToFix = std::string("add ") + k.entryPoint + " (and " + k.command +
                                 ") matching the image's ENTRYPOINT and CMD to the container";
    if (!options_.extractEntrypoint)
      return invalid("entrypoint_required", epPath, &ct,
                     "container " + label + " has no " + k.entryPoint +
                         ", so the Defender cannot start the image's own entrypoint: " + howToFix +
                         ", or pass extractEntrypoint=true with the image's "
                         "entrypoint known to the Console (POST /api/v1/images/entrypoints)");
    const std::string imagePath = child(path, k.image);
    const Node* image = ct.find(k.image);
    if (!image)
      return invalid("missing_field", imagePath, &ct, "container " + label + " has no image");
    if (intrinsic(*image))
      return invalid("intrinsic_unsupported", imagePath, image,
                     "container " + label +
                         " has no entrypoint and its image is computed by an intrinsic, so "
                         "the image's entrypoint cannot be looked up: " +
                         howToFix);
    if (!image->isString()) return wrongType(imagePath, *image, "a string");
    if (!deps_.lookupImage)
      return Error::internal("entrypoint lookup requested but no image store is configured");
    auto found = deps_.lookupImage(image->text, cpuArchitecture_);
    if (!found.ok()) {  // e.g. the registry's answer: name the container and where it is
      Error e = found.error();
      e.message = "container " + label + ": " + e.message;
      e.field = imagePath;
      return e;
    }
    if (!found->has_value())
      return invalid("entrypoint_unknown", epPath, &ct,
                     "container " + label + ": the Console has no entrypoint data for image \"" +
                         image->text + "\"; " + howToFix +
                         ", or register the image with POST /api/v1/images/entrypoints");
    const ImageConfig& img = **found;
    Node* cmd = ct.find(k.command);
    const bool hasCommand = !isEmptyArgv(cmd);
    if (img.entrypoint.empty() && img.cmd.empty() && !hasCommand)
      return invalid("entrypoint_unknown", epPath, &ct,
                     "container " + label + ": image \"" + image->text +
                         "\" has neither ENTRYPOINT nor CMD and the container has no " + k.command +
                         "; " + howToFix);
    std::vector<std::string> argv = kLauncherArgv;
    argv.insert(argv.end(), img.entrypoint.begin(), img.entrypoint.end());
    ct.set(k.entryPoint, stringArray(argv));
    if (!hasCommand && !img.cmd.empty()) ct.set(k.command, stringArray(img.cmd));
    return Status::success();
  }

  static Node env(const Keys& k, const std::string& name, Node value) {
    Node e = Node::object();
    e.set(k.name, Node::string(name));
    e.set(k.value, std::move(value));
    return e;
  }

  /// INSTALL_BUNDLE: base64 of {"appID": <App ID>, <the issuer's members>}. With an intrinsic
  /// family CloudFormation builds it: Fn::Base64 over Fn::Join of literal JSON text and the
  /// family's own intrinsic (an App ID must never hold an intrinsic as text).
  Node installBundle(const Node& family, const IssuedDefinition& issued) {
    std::string rest = deps_.installBundle ? deps_.installBundle(issued) : std::string("{}");
    if (rest.size() < 2 || rest.front() != '{' || rest.back() != '}') rest = "{}";
    // rest without its braces, after a comma when not empty.
    const std::string members = rest.size() > 2 ? "," + rest.substr(1, rest.size() - 2) : "";
    if (!issued.familyIsIntrinsic)
      return Node::string(auth::base64(
          toCompactJson(Node::string(issued.appId)).insert(0, "{\"appID\":") + members + "}"));
    // ECS family names are [A-Za-z0-9_-], so the family's value needs no JSON escaping.
    Node parts = Node::array();
    parts.items.push_back(Node::string("{\"appID\":\""));
    parts.items.push_back(family);
    parts.items.push_back(Node::string(":" + issued.uuid + "\"" + members + "}"));
    Node joinArgs = Node::array();
    joinArgs.items.push_back(Node::string(""));
    joinArgs.items.push_back(std::move(parts));
    Node join = Node::object();
    join.set("Fn::Join", std::move(joinArgs));
    Node b64 = Node::object();
    b64.set("Fn::Base64", std::move(join));
    return b64;
  }

  Node sidecar(const Keys& k, const Node& family, const IssuedDefinition& issued) {
    Node f = family;
    f.line = 0;
    Node appId;
    if (issued.familyIsIntrinsic) {
      // The App ID is built by CloudFormation from the same intrinsic as the family.
      Node joinArgs = Node::array();
      joinArgs.items.push_back(Node::string(":"));
      Node parts = Node::array();
      parts.items.push_back(f);
      parts.items.push_back(Node::string(issued.uuid));
      joinArgs.items.push_back(std::move(parts));
      appId = Node::object();
      appId.set("Fn::Join", std::move(joinArgs));
    } else {
      appId = Node::string(issued.appId);
    }

    Node c = Node::object();
    c.set(k.name, Node::string(std::string(kSidecarName)));
    c.set(k.image, Node::string(options_.sidecarImage));
    c.set(k.essential, Node::boolean(true));
    c.set(k.entryPoint, stringArray(kSidecarArgv));
    // The vendor's order first (automation reads entries 0 and 3 by position), then ours.
    Node envs = Node::array();
    // Filled by fillBundles once the whole document passed (entry 0, the vendor's position).
    envs.items.push_back(env(k, "INSTALL_BUNDLE", Node::string("")));
    envs.items.push_back(env(k, "DEFENDER_TYPE", Node::string("fargate")));
    envs.items.push_back(
        env(k, "FARGATE_TASK", issued.familyIsIntrinsic ? f : Node::string(issued.family)));
    envs.items.push_back(env(k, "WS_ADDRESS",
                             Node::string((options_.defenderTls ? "wss://" : "ws://") +
                                          hostForUrl(options_.consoleHost) + ":" +
                                          std::to_string(options_.defenderPort))));
    envs.items.push_back(env(k, "CONSOLE_HOST", Node::string(options_.consoleHost)));
    envs.items.push_back(env(k, "DEFENDER_APP_ID", std::move(appId)));
    envs.items.push_back(env(k, "FILESYSTEM_MONITORING",
                             Node::string(options_.filesystemMonitoring ? "true" : "false")));
    c.set(k.environment, std::move(envs));
    Node hc = Node::object();
    hc.set(k.command, stringArray(kSidecarHealthArgv));
    hc.set(k.interval, Node::number("5"));
    hc.set(k.retries, Node::number("3"));
    hc.set(k.timeout, Node::number("5"));
    hc.set(k.startPeriod, Node::number("1"));
    c.set(k.healthCheck, std::move(hc));
    c.set(k.stopTimeout, Node::number(std::to_string(kSidecarStopTimeoutSeconds)));
    return c;
  }

  static std::string hostForUrl(const std::string& host) {
    return host.find(':') != std::string::npos ? "[" + host + "]" : host;  // IPv6 literal
  }

  /// Intrinsics only exist in CloudFormation; in native JSON {"Ref": …} is just an object.
  std::optional<std::string> intrinsic(const Node& n) const {
    return cfn_ ? intrinsicName(n) : std::nullopt;
  }

  const EmbedOptions& options_;
  const TransformDeps& deps_;
  std::string cpuArchitecture_;  // runtimePlatform.cpuArchitecture of the task being embedded
  bool cfn_ = false;
  std::vector<Error> problems_;    // every problem found, in document order
  std::optional<Error> conflict_;  // already_protected: reported alone
  std::vector<PendingBundle> pending_;
};

}  // namespace

std::string_view toString(InputKind kind) {
  switch (kind) {
    case InputKind::kNative:
      return "native";
    case InputKind::kDescribeOutput:
      return "describe-task-definition";
    case InputKind::kCloudFormationResource:
      return "cloudformation-resource";
    case InputKind::kCloudFormationProperties:
      return "cloudformation-properties";
    case InputKind::kCloudFormationTemplate:
      return "cloudformation-template";
  }
  return "unknown";
}

std::optional<std::string> intrinsicName(const Node& node) {
  if (!node.tag.empty()) {
    if (node.tag.size() < 2 || node.tag[0] != '!') return std::nullopt;
    const std::string t = node.tag.substr(1);
    if (!kShortTags.count(t)) return std::nullopt;
    return (t == "Ref" || t == "Condition") ? t : "Fn::" + t;
  }
  if (!node.isObject() || node.members.size() != 1) return std::nullopt;
  const std::string& key = node.members[0].key;
  if (key == "Ref" || key == "Condition" || key.rfind("Fn::", 0) == 0) return key;
  return std::nullopt;
}

Result<TransformResult> embedDefender(Node document, const EmbedOptions& options,
                                      const TransformDeps& deps, std::vector<Error>* problems) {
  Embedder embedder(options, deps);
  auto result = embedder.run(std::move(document));
  if (problems && !result.ok()) {
    *problems = embedder.problems();
    if (problems->empty() || problems->front().code != result.error().code ||
        problems->front().field != result.error().field)
      *problems = {result.error()};  // a structural error that stopped the run early
  }
  return result;
}

}  // namespace dc::embed
