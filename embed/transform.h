// The embed transform (DESIGN §6): turns a Fargate task definition into a protected one.
//
// Pure: no HTTP, no storage. Image entrypoints and App ID UUIDs come from injected functions, so
// tests are deterministic. The input document is taken by value and only returned when every
// task definition in it was rewritten; any problem is an Error naming the path (and, for YAML,
// the line), never a partial output.
//
// What changes (everything else is kept as it was, including key order):
//  - one sidecar container `TwistlockDefender` appended to each container list;
//  - in every original container: `entryPoint` becomes kLauncherArgv + the original argv;
//    `volumesFrom` gets the sidecar appended; `dependsOn` gets {sidecar, START} appended;
//    `linuxParameters.capabilities.add` gets SYS_PTRACE unless present; `command` is untouched,
//    except that it is set to the image's CMD when the entrypoint came from the image store and
//    the container had no command (an entrypoint override would otherwise drop the image CMD);
//  - each original container's `environment` gets TW_IMAGE_NAME and TW_CONTAINER_NAME appended;
//  - describe-task-definition output is unwrapped into a register input (`tags` moves inside);
//    the top level of every native task definition keeps only RegisterTaskDefinition fields,
//    the others are dropped and reported.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "embed/document.h"

namespace dc::embed {

/// Name of the sidecar container (vendor name).
inline constexpr std::string_view kSidecarName = "TwistlockDefender";
/// Volume path the sidecar shares with every container (a VOLUME of the sidecar image).
inline constexpr std::string_view kDefenderDir = "/var/lib/twistlock/fargate";
/// argv prepended to each container's entrypoint. The launcher starts the original argv (what
/// follows) as a child under the defender's watch.
inline const std::vector<std::string> kLauncherArgv = {"/var/lib/twistlock/fargate/defender",
                                                       "fargate", "entrypoint"};
/// Sidecar entrypoint and health check (binaries inside the sidecar image).
inline const std::vector<std::string> kSidecarArgv = {"/usr/local/bin/defender", "fargate",
                                                      "sidecar"};
inline const std::vector<std::string> kSidecarHealthArgv = {"CMD", "/usr/local/bin/defender",
                                                            "fargate", "healthcheck"};
/// ECS limits (RegisterTaskDefinition).
inline constexpr size_t kMaxContainers = 10;
inline constexpr size_t kMaxRegisterBytes = 64 * 1024;

/// What the input was.
enum class InputKind {
  kNative,                  // register-task-definition input
  kDescribeOutput,          // describe-task-definition output {"taskDefinition": …, "tags": …}
  kCloudFormationResource,  // {"Type": "AWS::ECS::TaskDefinition", "Properties": …}
  kCloudFormationProperties,  // the Properties object alone
  kCloudFormationTemplate,    // a full template with "Resources"
};
std::string_view toString(InputKind kind);

/// An image's ENTRYPOINT and CMD as the Console knows them (registry-scan results).
struct ImageConfig {
  std::vector<std::string> entrypoint;
  std::vector<std::string> cmd;
};

/// Looks up an image reference as written in the task definition, for the task's
/// runtimePlatform.cpuArchitecture ("X86_64", "ARM64"; "" when the task does not say).
/// nullopt: unknown image. An Error (storage unavailable, the registry's answer) aborts the
/// transform with that error, its message prefixed with the container and its field set to the
/// container's image path.
using ImageLookup = std::function<Result<std::optional<ImageConfig>>(
    std::string_view image, std::string_view cpuArchitecture)>;
/// Produces a fresh canonical UUID for an App ID.
using UuidGenerator = std::function<std::string()>;

/// One App ID issued for one task definition in the document.
struct IssuedDefinition {
  std::string appId;  // "<family>:<uuid>"; for an intrinsic family, "<family JSON>:<uuid>"
  std::string uuid;
  std::string family;  // the literal family, or the intrinsic as compact JSON
  bool familyIsIntrinsic = false;
  std::string path;  // where the task definition is, e.g. "Resources.WebTask"
};

/// The members of one INSTALL_BUNDLE other than "appID", as the text of a compact JSON object
/// (`{"consoleHost":"c","defenderPort":8084,"credential":"..."}`; "{}" for none). The transform
/// puts "appID" first and base64-encodes the object; when the family is an intrinsic the
/// encoding is left to CloudFormation (`Fn::Base64` over `Fn::Join` with the family's own
/// intrinsic), so the App ID in the bundle is the deployed family, never an intrinsic as text.
using BundleIssuer = std::function<std::string(const IssuedDefinition&)>;

/// Request options, already validated (see handler.h for the query parameters).
struct EmbedOptions {
  std::string consoleHost;   // host the defender connects to (from `consoleaddr`)
  int defenderPort = 8084;   // the Console's defender channel
  bool defenderTls = true;   // WS_ADDRESS scheme: wss:// (TLS) or ws:// (plain-HTTP Console)
  std::string sidecarImage;  // image of the sidecar container
  bool filesystemMonitoring = false;
  bool extractEntrypoint = false;
  std::optional<bool> cloudFormation;  // nullopt: detect from the document
  std::string registryType;            // "" or a registry type: entrypoints may be read from the
                                       // image's registry (handler.h)
  std::string registryCredentialId;    // stored registry credential used for that
};

struct TransformDeps {
  ImageLookup lookupImage;  // may be empty when extractEntrypoint is false
  UuidGenerator newUuid;
  BundleIssuer installBundle;  // empty: a bundle holding only the App ID
};

/// A top-level member of a native task definition that RegisterTaskDefinition does not accept
/// (e.g. describe-task-definition's `taskDefinitionArn`), removed from the output.
struct DroppedField {
  std::string field;   // its path: "taskDefinitionArn" (also for the describe wrapper)
  std::string reason;  // why, for people: "read-only field of describe-task-definition output"
};

/// A task definition of a template left exactly as it was because it cannot run on Fargate.
struct SkippedDefinition {
  std::string path;  // "Resources.LegacyTask.Properties"
  Error reason;      // not_fargate or windows_not_supported, naming the field
};

struct TransformResult {
  Node document;
  InputKind kind = InputKind::kNative;
  std::vector<IssuedDefinition> issued;    // one per protected task definition, in document order
  std::vector<DroppedField> dropped;       // native and describe input only
  std::vector<SkippedDefinition> skipped;  // templates only
};

/// Embeds the defender into every task definition of `document`. In a template, a task
/// definition that cannot run on Fargate (not_fargate, windows_not_supported) is left unchanged
/// and listed in `skipped`; the request fails only when nothing could be protected.
///
/// Errors (all kInvalidArgument unless noted), each naming the path and, for YAML, the line:
///   invalid_type, missing_field, no_task_definition, format_mismatch, not_fargate,
///   windows_not_supported, invalid_family, missing_family, invalid_container_name,
///   duplicate_container_name, too_many_containers, register_size_exceeded,
///   intrinsic_unsupported, entrypoint_required, entrypoint_unknown, already_protected (409).
/// The transform goes on after a problem where the rest can still be checked (the next
/// container, the next task definition); the returned Error is the first problem and, when
/// `problems` is given, it receives every problem found in document order (the first included).
/// already_protected is reported alone: it means "wrong input", not a list of defects.
Result<TransformResult> embedDefender(Node document, const EmbedOptions& options,
                                      const TransformDeps& deps,
                                      std::vector<Error>* problems = nullptr);

/// True when `node` is a CloudFormation intrinsic: a YAML short-form tag (`!Ref`, `!Sub`, ...)
/// or a one-member object whose key is `Ref`, `Condition` or `Fn::*`. Returns its long name.
std::optional<std::string> intrinsicName(const Node& node);

}  // namespace dc::embed
