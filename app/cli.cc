#include "app/cli.h"

#include <google/protobuf/stubs/logging.h>
#include <spdlog/spdlog.h>

#include <iostream>

#include "app/commands.h"
#include "core/log.h"

#ifndef MEDIC_VERSION
#define MEDIC_VERSION "0.0.0"
#endif

namespace medic::app {

int run_cli(int argc, char** argv) {
  CLI::App app{"medic: event-driven self-healing for virtual machines"};
  app.set_version_flag("--version", std::string("medic ") + MEDIC_VERSION);
  app.require_subcommand(1);

  LogOptions log;
  app.add_option("--log-level", log.level, "trace, debug, info, warn, error, off")
      ->capture_default_str();
  app.add_flag("--log-json", log.json, "log one JSON object per line");
  app.add_option("--log-file", log.file, "log to this file instead of stderr");
  app.parse_complete_callback([&] {
    Status s = setup_logging(log);
    if (!s.ok()) {
      std::cerr << "medic: " << s.message() << "\n";
      std::exit(2);
    }
  });

  // Protobuf's own complaints about untrusted input go to our log at debug
  // level: callers already count and report every rejected frame.
  google::protobuf::SetLogHandler([](google::protobuf::LogLevel, const char* file, int line,
                                     const std::string& msg) {
    spdlog::debug("protobuf {}:{}: {}", file, line, msg);
  });

  int exit_code = 0;
  add_demo(app, &exit_code);
  add_engine(app, &exit_code);
  add_agent(app, &exit_code);
  add_rules(app, &exit_code);
  add_record(app, &exit_code);
  add_audit(app, &exit_code);
  add_control(app, &exit_code);
  add_request(app, &exit_code);
  add_bridge(app, &exit_code);
  add_keygen(app, &exit_code);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  return exit_code;
}

}  // namespace medic::app
