#include "vmm/qmp/console_log.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <filesystem>
#include <system_error>

namespace medic::vmm::qmp {
namespace fs = std::filesystem;

// PATH.<keep> is dropped and PATH.<n> becomes PATH.<n+1>, so PATH.1 is free
// for the caller.
Status ConsoleLog::shift() {
  std::error_code ec;
  fs::remove(numbered(keep_), ec);
  for (int n = keep_ - 1; n >= 1; --n) {
    if (!fs::exists(numbered(n), ec)) continue;
    fs::rename(numbered(n), numbered(n + 1), ec);
    if (ec) return io_error("console log: rename " + numbered(n) + ": " + ec.message());
  }
  return {};
}

Status ConsoleLog::rotate() {
  if (path_.empty()) return {};
  std::error_code ec;
  const auto size = fs::file_size(path_, ec);
  if (ec || size == 0) return {};  // nothing of an earlier boot to keep
  if (keep_ <= 0) {
    fs::remove(path_, ec);
    return {};
  }
  MEDIC_RETURN_IF_ERROR(shift());
  fs::rename(path_, numbered(1), ec);
  if (ec) return io_error("console log: rename " + path_ + ": " + ec.message());
  return {};
}

Result<bool> ConsoleLog::trim() {
  if (path_.empty()) return false;
  std::error_code ec;
  const auto size = fs::file_size(path_, ec);
  if (ec || size <= max_bytes_) return false;
  if (keep_ > 0) {
    MEDIC_RETURN_IF_ERROR(shift());
    fs::copy_file(path_, numbered(1), fs::copy_options::overwrite_existing, ec);
    if (ec) return io_error("console log: copy " + path_ + ": " + ec.message());
  }
  // QEMU holds the file open for appending: its next write lands at 0.
  if (::truncate(path_.c_str(), 0) != 0) {
    return io_error("console log: truncate " + path_ + ": " + std::strerror(errno));
  }
  return true;
}

}  // namespace medic::vmm::qmp
