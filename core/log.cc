#include "core/log.h"

#include "core/json.h"

#include <cstdio>

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/spdlog.h>

namespace medic {
namespace {

// %j: the message escaped for a JSON string, so every line stays valid JSON
// whatever a log message contains.
class JsonMessageFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    // A JSON string literal without its quotes.
    std::string out = dump_json(Json(std::string(msg.payload.data(), msg.payload.size())));
    dest.append(out.data() + 1, out.data() + out.size() - 1);
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<JsonMessageFlag>();
  }
};

}  // namespace



bool LogLimiter::warn(const std::string& cause, Time now, const std::string& message) {
  uint64_t held = 0;
  if (!allow(cause, now, &held)) return false;
  if (held > 0) {
    spdlog::warn("{} ({} more like this held back)", message, held);
  } else {
    spdlog::warn("{}", message);
  }
  return true;
}

bool LogLimiter::allow(const std::string& cause, Time now, uint64_t* suppressed) {
  auto& e = entries_[cause];
  if (e.last.time_since_epoch().count() != 0 && now - e.last < interval_) {
    ++e.suppressed;
    return false;
  }
  if (suppressed) *suppressed = e.suppressed;
  e.suppressed = 0;
  e.last = now;
  return true;
}

Status setup_logging(const LogOptions& options) {
  auto level = spdlog::level::from_str(options.level);
  if (level == spdlog::level::off && options.level != "off") {
    return invalid_argument("unknown log level \"" + options.level +
                            "\" (expected trace, debug, info, warn, error, critical or off)");
  }
  std::shared_ptr<spdlog::logger> logger;
  try {
    if (options.file.empty()) {
      logger = spdlog::stderr_color_mt("medic");
    } else {
      logger = spdlog::basic_logger_mt("medic", options.file);
    }
  } catch (const spdlog::spdlog_ex& e) {
    return io_error(std::string("cannot set up logging: ") + e.what());
  }
  if (options.json) {
    auto formatter = std::make_unique<spdlog::pattern_formatter>();
    formatter->add_flag<JsonMessageFlag>('j').set_pattern(
        R"({"ts":"%Y-%m-%dT%H:%M:%S.%fZ","level":"%l","logger":"%n","msg":"%j"})");
    logger->set_formatter(std::move(formatter));
  } else {
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  }
  logger->set_level(level);
  spdlog::set_default_logger(logger);
  return {};
}

}  // namespace medic
