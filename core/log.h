// Logging for medic processes, on spdlog. One process-wide logger set up once
// by main(); modules log through spdlog's default logger. Rate limiting of
// repeated causes lives with the code that counts them (see fabric/).
#pragma once

#include <string>

#include "core/status.h"

namespace medic {

struct LogOptions {
  std::string level = "info";  // trace, debug, info, warn, error, critical, off
  bool json = false;           // one JSON object per line
  std::string file;            // empty: stderr
};

Status setup_logging(const LogOptions& options);

}  // namespace medic
