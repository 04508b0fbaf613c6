#include "core/log.h"

#include "core/json.h"

#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>

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

// %P: the line's syslog priority as journald reads it from a stream,
// "<3>" for error ... "<7>" for debug and trace (sd-daemon(3)).
class PriorityFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    char prefix[4] = {'<', priority_digit(msg.level), '>', 0};
    dest.append(prefix, prefix + 3);
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<PriorityFlag>();
  }

 private:
  static char priority_digit(spdlog::level::level_enum level) {
    switch (level) {
      case spdlog::level::critical: return '2';
      case spdlog::level::err: return '3';
      case spdlog::level::warn: return '4';
      case spdlog::level::info: return '6';
      default: return '7';
    }
  }
};

bool wants_priority(const LogOptions& o) {
  switch (o.priority) {
    case LogOptions::Priority::kOn: return true;
    case LogOptions::Priority::kOff: return false;
    case LogOptions::Priority::kAuto: break;
  }
  return o.file.empty() && stderr_is_journal();
}

std::unique_ptr<spdlog::formatter> make_formatter(const LogOptions& o) {
  auto f = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
  f->add_flag<JsonMessageFlag>('j');
  f->add_flag<PriorityFlag>('P');
  const std::string prefix = wants_priority(o) ? "%P" : "";
  if (o.json) {
    f->set_pattern(prefix + R"({"ts":"%Y-%m-%dT%H:%M:%S.%fZ","level":"%l","logger":"%n","msg":"%j"})");
  } else {
    f->set_pattern(prefix + "%Y-%m-%dT%H:%M:%S.%eZ %^%l%$ %v");
  }
  return f;
}

}  // namespace

bool stderr_is_journal() {
  const char* stream = std::getenv("JOURNAL_STREAM");
  if (stream == nullptr) return false;
  unsigned long long dev = 0, ino = 0;
  if (std::sscanf(stream, "%llu:%llu", &dev, &ino) != 2) return false;
  struct stat st {};
  if (fstat(2, &st) != 0) return false;
  return static_cast<unsigned long long>(st.st_dev) == dev &&
         static_cast<unsigned long long>(st.st_ino) == ino;
}

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
  logger->set_formatter(make_formatter(options));
  logger->set_level(level);
  // Every line reaches the kernel when written: nothing waits in a buffer
  // for a crash or kill -9 to lose.
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(logger);
  return {};
}

}  // namespace medic
