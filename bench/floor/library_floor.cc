// The resident memory of the libraries a collector must use, with no medic
// code: libcurl (one GET per probe through a multi handle), libzmq (a PUB/SUB
// pair over tcp loopback), libsodium (one Ed25519 signature), the protobuf
// lite runtime (a 100-event batch encoded and decoded) and the C++ runtime.
// bench/collector_bench.sh runs it next to the collector: the difference is
// what the collector's own code and data cost.
//
//   library_floor PORT [PROBES]     # PORT: an HTTP server on 127.0.0.1
#include <curl/curl.h>
#include <sodium.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "medic/v1/events.pb.h"

namespace {

uint64_t status_kib(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field, 0) == 0) return std::stoull(line.substr(field.size()));
  }
  return 0;
}

size_t discard(char*, size_t size, size_t n, void*) { return size * n; }

// One GET per probe, all in flight at once, bounded by a 5 s timeout each.
int probe_all(int port, int probes) {
  CURLM* multi = curl_multi_init();
  std::vector<CURL*> easy;
  const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/";
  for (int i = 0; i < probes; ++i) {
    CURL* e = curl_easy_init();
    curl_easy_setopt(e, CURLOPT_URL, url.c_str());
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 5000L);
    curl_multi_add_handle(multi, e);
    easy.push_back(e);
  }
  int running = 1;
  while (running > 0) {
    curl_multi_perform(multi, &running);
    if (running > 0) curl_multi_poll(multi, nullptr, 0, 100, nullptr);
  }
  int ok = 0;
  while (CURLMsg* m = curl_multi_info_read(multi, &running)) {
    if (m->msg == CURLMSG_DONE && m->data.result == CURLE_OK) ++ok;
  }
  // Kept, as a collector keeps its handles between runs.
  return ok;
}

bool zmq_round_trip(zmq::context_t& ctx, zmq::socket_t& pub, zmq::socket_t& sub) {
  pub.bind("tcp://127.0.0.1:*");
  sub.set(zmq::sockopt::subscribe, "");
  sub.connect(pub.get(zmq::sockopt::last_endpoint));
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  zmq::message_t got;
  while (std::chrono::steady_clock::now() < end) {
    pub.send(zmq::str_buffer("floor"), zmq::send_flags::dontwait);
    if (sub.recv(got, zmq::recv_flags::dontwait)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  (void)ctx;
  return false;
}

bool sign_once() {
  if (sodium_init() < 0) return false;
  unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
  crypto_sign_keypair(pk, sk);
  const unsigned char msg[100] = {};
  unsigned char sig[crypto_sign_BYTES];
  crypto_sign_detached(sig, nullptr, msg, sizeof msg, sk);
  return crypto_sign_verify_detached(sig, msg, sizeof msg, pk) == 0;
}

bool protobuf_round_trip() {
  medic::v1::EventBatch batch;
  for (int i = 0; i < 100; ++i) {
    auto* e = batch.add_events();
    e->set_host("floor");
    e->set_vm("vm-" + std::to_string(i));
    auto* s = e->mutable_state();
    s->set_state(medic::v1::VM_STATE_RUNNING);
    auto* l = s->add_labels();
    l->set_key("tier");
    l->set_value("web");
  }
  medic::v1::EventBatch back;
  return back.ParseFromString(batch.SerializeAsString()) && back.events_size() == 100;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: library_floor PORT [PROBES]\n");
    return 2;
  }
  const int port = std::stoi(argv[1]);
  const int probes = argc > 2 ? std::stoi(argv[2]) : 100;
  curl_global_init(CURL_GLOBAL_DEFAULT);
  zmq::context_t ctx(1);
  zmq::socket_t pub(ctx, zmq::socket_type::pub), sub(ctx, zmq::socket_type::sub);
  const int ok = probe_all(port, probes);
  const bool zmq_ok = zmq_round_trip(ctx, pub, sub);
  const bool signed_ok = sign_once();
  const bool pb_ok = protobuf_round_trip();
  if (ok != probes || !zmq_ok || !signed_ok || !pb_ok) {
    std::fprintf(stderr, "library_floor: probes ok %d/%d, zmq %d, sodium %d, protobuf %d\n", ok,
                 probes, zmq_ok, signed_ok, pb_ok);
    return 1;
  }
  std::printf(
      "floor: rss %lu KiB (anonymous %lu KiB, file-backed library pages %lu KiB) for libcurl "
      "(%d GETs in flight), libzmq, libsodium, protobuf-lite and libstdc++ with no medic code\n",
      static_cast<unsigned long>(status_kib("VmRSS:")),
      static_cast<unsigned long>(status_kib("RssAnon:")),
      static_cast<unsigned long>(status_kib("RssFile:")), probes);
  return 0;
}
