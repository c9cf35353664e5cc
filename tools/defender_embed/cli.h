// defender-embed: embeds the App-Embedded Defender into a Fargate task definition through the
// Console API, in the spirit of `twistcli app-embedded generate-fargate-task`.
//
//   defender-embed --address https://console:8083 --console-host console.example.com
//     [--user admin] [--cloud-formation] [--extract-entrypoint] [--output-file out.json] task.json
//
// The task file is sent to POST /api/v1/defenders/fargate.json (or fargate.yaml for .yaml/.yml
// files); the protected task definition is written to --output-file or stdout.
#pragma once

#include <functional>
#include <iosfwd>
#include <string>

namespace dc::tools {

/// Exit codes.
inline constexpr int kExitOk = 0;
inline constexpr int kExitRefused = 1;  // the Console refused the request (4xx/5xx)
inline constexpr int kExitUsage = 2;    // bad flags, unreadable task file, unwritable output
inline constexpr int kExitNetwork = 3;  // the Console could not be reached

struct CliIo {
  std::ostream& out;  // the protected task definition when no --output-file
  std::ostream& err;  // diagnostics
  /// Password for --user when DEFENDER_EMBED_PASSWORD is unset (default: prompt on the tty).
  std::function<std::string(const std::string& prompt)> readPassword;
};

/// Runs the tool; returns the process exit code.
int runDefenderEmbed(int argc, const char* const* argv, const CliIo& io);

}  // namespace dc::tools
