#include "tools/defender_embed/cli.h"

#include <httplib.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace dc::tools {

namespace {

bool endsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string ttyPassword(const std::string& prompt) {
  const char* p = ::getpass(prompt.c_str());  // reads /dev/tty without echo
  return p ? std::string(p) : std::string();
}

}  // namespace

int runDefenderEmbed(int argc, const char* const* argv, const CliIo& io) {
  CLI::App app{
      "Embed the App-Embedded Defender into an ECS Fargate task definition (native JSON, or a "
      "CloudFormation template in JSON or YAML) through the Console API."};
  std::string address, consoleHost, outputFile, user, taskFile, format, registryType,
      registryCredential, caCert;
  bool cloudFormation = false, extractEntrypoint = false, fsMonitoring = false, insecure = false;
  app.add_option("--address", address,
                 "Console URL (scheme://host[:port]) used to submit the task definition")
      ->required();
  app.add_option("--console-host", consoleHost,
                 "host name or IP address the Defender uses to reach the Console (consoleaddr)")
      ->required();
  app.add_option("--output-file", outputFile, "write the protected task definition here")
      ->default_str("stdout");
  app.add_flag("--cloud-formation", cloudFormation,
               "the task file is a CloudFormation template or AWS::ECS::TaskDefinition resource");
  app.add_option("-u,--user", user,
                 "Console user (password from DEFENDER_EMBED_PASSWORD, else prompted)");
  app.add_flag("--extract-entrypoint", extractEntrypoint,
               "take missing entrypoints from the Console's image data (registry scans)");
  app.add_flag("--filesystem-monitoring", fsMonitoring, "enable file-system runtime protection");
  app.add_option("--format", format, "json or yaml (default: from the task file's extension)")
      ->check(CLI::IsMember({"json", "yaml"}));
  app.add_option("--registry-type", registryType, "registry type (vendor parameter)");
  app.add_option("--registry-credential-id", registryCredential,
                 "registry credential ID (vendor parameter)");
  app.add_option("--cacert", caCert, "CA bundle to verify the Console's TLS certificate");
  app.add_flag("--insecure", insecure, "do not verify the Console's TLS certificate");
  app.add_option("task-file", taskFile, "the task definition to protect")->required();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    std::ostringstream out, err;
    const int code = app.exit(e, out, err);
    io.out << out.str();
    io.err << err.str();
    return code == 0 ? kExitOk : kExitUsage;
  }

  std::ifstream in(taskFile, std::ios::binary);
  if (!in) {
    io.err << "defender-embed: cannot read " << taskFile << "\n";
    return kExitUsage;
  }
  std::ostringstream body;
  body << in.rdbuf();
  if (format.empty())
    format = endsWith(taskFile, ".yaml") || endsWith(taskFile, ".yml") ? "yaml" : "json";

  httplib::Params query{{"consoleaddr", consoleHost},
                        {"cloudFormation", cloudFormation ? "true" : "false"},
                        {"extractEntrypoint", extractEntrypoint ? "true" : "false"},
                        {"filesystemMonitoring", fsMonitoring ? "true" : "false"}};
  if (!registryType.empty()) query.emplace("registryType", registryType);
  if (!registryCredential.empty()) query.emplace("registryCredentialID", registryCredential);
  const std::string path =
      httplib::append_query_params("/api/v1/defenders/fargate." + format, query);

  while (!address.empty() && address.back() == '/') address.pop_back();
  httplib::Client client(address);
  if (!client.is_valid()) {
    io.err << "defender-embed: invalid --address " << address << "\n";
    return kExitUsage;
  }
  client.set_connection_timeout(10);
  client.set_read_timeout(60);
  client.enable_server_certificate_verification(!insecure);
  if (!caCert.empty()) client.set_ca_cert_path(caCert.c_str());
  if (!user.empty()) {
    const char* env = std::getenv("DEFENDER_EMBED_PASSWORD");
    std::string password =
        env ? std::string(env)
            : (io.readPassword ? io.readPassword : ttyPassword)("Password for " + user + ": ");
    client.set_basic_auth(user.c_str(), password.c_str());
  }

  const std::string contentType = format == "yaml" ? "application/yaml" : "application/json";
  auto res = client.Post(path.c_str(), body.str(), contentType.c_str());
  if (!res) {
    io.err << "defender-embed: cannot reach " << address << ": " << httplib::to_string(res.error())
           << "\n";
    return kExitNetwork;
  }
  if (res->status != 200) {
    auto j = nlohmann::json::parse(res->body, nullptr, false);
    io.err << "defender-embed: the Console refused the task definition (HTTP " << res->status
           << ")";
    if (j.is_object() && j.contains("code") && j.contains("message"))
      io.err << ": " << j["code"].get<std::string>() << ": " << j["message"].get<std::string>();
    io.err << "\n";
    // Every problem the Console found, when it found more than one (docs/embed.md).
    if (j.is_object() && j.contains("problems") && j["problems"].is_array() &&
        j["problems"].size() > 1)
      for (const auto& p : j["problems"])
        if (p.is_object() && p.value("code", "").size() && p.contains("message"))
          io.err << "  " << p["code"].get<std::string>() << ": " << p.value("message", "") << "\n";
    return kExitRefused;
  }
  if (outputFile.empty()) {
    io.out << res->body;
  } else {
    std::ofstream out(outputFile, std::ios::binary | std::ios::trunc);
    out << res->body;
    if (!out.flush()) {
      io.err << "defender-embed: cannot write " << outputFile << "\n";
      return kExitUsage;
    }
  }
  const std::string ids = res->get_header_value("X-Defender-App-IDs");
  if (!ids.empty()) io.err << "App ID: " << ids << "\n";
  // What the Console changed besides embedding: fields dropped, task definitions skipped.
  auto report =
      nlohmann::json::parse(res->get_header_value("X-Defender-Embed-Report"), nullptr, false);
  if (report.is_object()) {
    for (const auto& d : report.value("dropped", nlohmann::json::array()))
      if (d.is_object())
        io.err << "dropped " << d.value("field", "") << " (" << d.value("reason", "") << ")\n";
    for (const auto& sk : report.value("skipped", nlohmann::json::array()))
      if (sk.is_object())
        io.err << "skipped " << sk.value("resource", "") << ": " << sk.value("message", "") << "\n";
  }
  return kExitOk;
}

}  // namespace dc::tools
