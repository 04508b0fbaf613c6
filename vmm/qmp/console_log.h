// The guest console log of the qmp backend: one file per boot of a QEMU,
// earlier boots kept beside it, bounded in size and count.
//
// QEMU writes the guest's first serial port to PATH (a file chardev opened
// with append=on). Before each launch, PATH becomes PATH.1, PATH.1 becomes
// PATH.2, and so on up to PATH.<keep>; older ones are removed. So the boot
// that failed (its panic trace) is still there after medic restarts the VM.
// While QEMU runs, a PATH grown past max_bytes is rotated the same way and
// cut to zero; QEMU appends, so it writes on from the start of the file.
// Bytes the guest writes between the copy and the cut are lost (a window of
// microseconds, once per max_bytes of output).
#pragma once

#include <cstdint>
#include <string>

#include "core/status.h"

namespace medic::vmm::qmp {

class ConsoleLog {
 public:
  // `keep`: earlier files kept (PATH.1 .. PATH.<keep>); 0 keeps none.
  ConsoleLog(std::string path, int keep, uint64_t max_bytes)
      : path_(std::move(path)), keep_(keep), max_bytes_(max_bytes) {}

  // Before a launch: shifts PATH (when it is not empty) and its earlier
  // files one place on. An empty path does nothing.
  Status rotate();
  // While QEMU runs: when PATH holds more than max_bytes, rotates a copy of
  // it and cuts PATH to zero. True when it did.
  Result<bool> trim();

  const std::string& path() const { return path_; }

 private:
  Status shift();
  std::string numbered(int n) const { return path_ + "." + std::to_string(n); }

  std::string path_;
  int keep_;
  uint64_t max_bytes_;
};

}  // namespace medic::vmm::qmp
