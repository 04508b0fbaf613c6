#include <gtest/gtest.h>

#include <csignal>

#include "tests/testing/testing.h"

int main(int argc, char** argv) {
  // Tests that talk to sockets must see EPIPE, not die of SIGPIPE.
  std::signal(SIGPIPE, SIG_IGN);
  // Re-executed as a child process by one of this binary's tests.
  if (auto entry = medic::testing::child_entry_from_env()) return entry();
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
