// medic keygen -o FILE: a new node identity.
#include <iostream>

#include "app/commands.h"
#include "core/json.h"
#include "fabric/identity.h"

namespace medic::app {

void add_keygen(CLI::App& app, int* exit_code) {
  auto* sub = app.add_subcommand("keygen", "create a node identity (Ed25519 key pair, mode 0600)");
  auto path = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  sub->add_option("-o,--output", *path, "key file to create; never overwritten")->required();
  sub->add_flag("--json", *json, "print {\"key_id\": ..., \"file\": ...} instead of the bare id");
  sub->callback([path, json, exit_code] {
    if (!fabric::crypto_ready()) {
      std::cerr << "medic keygen: libsodium failed to initialise\n";
      *exit_code = 2;
      return;
    }
    auto id = fabric::Identity::generate();
    Status s = id.save(*path);
    if (!s.ok()) {
      std::cerr << "medic keygen: " << s.message() << "\n";
      *exit_code = 1;
      return;
    }
    if (*json) {
      Json j;
      j["key_id"] = id.id();
      j["file"] = *path;
      std::cout << dump_json(j) << "\n";
    } else {
      std::cout << id.id() << "\n";
    }
    std::cerr << "wrote " << *path << " (mode 0600); put the key id above in trust stores\n";
    *exit_code = 0;
  });
}

}  // namespace medic::app
