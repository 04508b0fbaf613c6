// `medic record`: a subscriber of the event fabric that keeps the signed
// envelopes of the last N hours in a bounded, rotating recording
// (replay/recorder.h) for `medic rules replay`. SIGTERM/SIGINT stop it
// cleanly. Exit (app/commands.h): 0 after a clean stop, kExitConfig (78)
// for options, a key or a trust store that cannot be used, 1 for any other
// failure to start (a port in use, an unwritable directory).
#include <spdlog/spdlog.h>

#include <cctype>
#include <iostream>

#include "app/commands.h"
#include "app/signals.h"
#include "app/systemd_notify.h"
#include "core/duration.h"
#include "replay/recorder.h"

namespace medic::app {
namespace {

struct RecordArgs {
  std::string key;
  std::string trust;
  std::string events;
  std::string urgent;
  std::string dir;
  std::string keep = "6h";
  std::string max_bytes = "8G";
  uint32_t segments = 12;
};

int fail(int code, const std::string& m) {
  std::cerr << "medic record: " << m << "\n";
  return code;
}

// "512M", "8G", "100000": bytes with an optional K, M or G (powers of 1024).
Result<uint64_t> parse_bytes(const std::string& text) {
  size_t end = 0;
  while (end < text.size() && std::isdigit(static_cast<unsigned char>(text[end]))) ++end;
  const std::string unit = text.substr(end);
  int shift = -1;
  if (unit.empty()) shift = 0;
  if (unit == "K") shift = 10;
  if (unit == "M") shift = 20;
  if (unit == "G") shift = 30;
  if (end == 0 || end > 12 || shift < 0) {
    return invalid_argument("cannot read \"" + text + "\" as bytes (e.g. 512M, 8G, 100000)");
  }
  return std::stoull(text.substr(0, end)) << shift;
}

Result<replay::RecorderConfig> config_of(const RecordArgs& a) {
  replay::RecorderConfig c;
  c.listen = {a.events, a.urgent};
  c.dir = a.dir;
  auto keep = parse_duration(a.keep);
  if (!keep.ok()) return keep.status().with_context("--keep");
  auto bytes = parse_bytes(a.max_bytes);
  if (!bytes.ok()) return bytes.status().with_context("--max-bytes");
  c.recording = {*keep, *bytes, a.segments};
  MEDIC_RETURN_IF_ERROR(replay::check_options(c.recording));
  return c;
}

int serve(replay::Recorder& recorder, const replay::RecorderConfig& c, SignalFlags& signals) {
  spdlog::info("record: up: events {} urgent {} into {} (keep {}, at most {} bytes)",
               recorder.events_endpoint(), recorder.urgent_endpoint(), c.dir,
               format_duration(c.recording.keep), c.recording.max_bytes);
  SystemdNotifier systemd;
  systemd.ready("recorder up");
  while (!signals.stop.load()) {
    recorder.run_once(std::chrono::milliseconds(100));
    systemd.tick();
  }
  systemd.stopping();
  Status s = recorder.close();
  spdlog::info("record: stopping: {}", recorder.summary());
  if (!s.ok()) return fail(1, "the recording did not close cleanly: " + s.message());
  return 0;
}

int run_record(const RecordArgs& a) {
  auto config = config_of(a);
  if (!config.ok()) return fail(kExitConfig, config.status().message());
  auto id = fabric::Identity::load(a.key);
  if (!id.ok()) return fail(kExitConfig, id.status().message());
  auto trust = fabric::TrustStore::load(a.trust);
  if (!trust.ok()) return fail(kExitConfig, trust.status().message());
  auto ctx = fabric::Context::create(*trust);
  if (!ctx.ok()) return fail(1, ctx.status().message());
  SystemClock clock;
  SignalFlags& signals = install_signal_handlers();  // before it binds
  auto recorder = replay::Recorder::create(*config, {**ctx, *id, *trust, clock});
  if (!recorder.ok()) return fail(1, recorder.status().message());
  return serve(**recorder, *config, signals);
}

}  // namespace

void add_record(CLI::App& app, int* exit_code) {
  auto a = std::make_shared<RecordArgs>();
  auto* sub = app.add_subcommand(
      "record", "keep the fabric's signed events of the last N hours for `medic rules replay`");
  sub->add_option("--key", a->key, "this recorder's key (medic keygen); collectors pin it")
      ->required();
  sub->add_option("--trust", a->trust, "the trust store that lists the collectors")->required();
  sub->add_option("--events", a->events, "bulk lane to bind, e.g. tcp://0.0.0.0:7711")->required();
  sub->add_option("--urgent", a->urgent, "urgent lane to bind, e.g. tcp://0.0.0.0:7712")
      ->required();
  sub->add_option("--dir", a->dir, "the recording directory")->required();
  sub->add_option("--keep", a->keep, "how much time the recording keeps")->capture_default_str();
  sub->add_option("--max-bytes", a->max_bytes, "the most it may hold on disk (K, M, G)")
      ->capture_default_str();
  sub->add_option("--segments", a->segments, "files the recording rotates through")
      ->capture_default_str();
  sub->callback([a, exit_code] { *exit_code = run_record(*a); });
}

}  // namespace medic::app
