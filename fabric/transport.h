// ZeroMQ transport for the medic fabric: a context that admits only
// trust-store keys, and sockets set up with CurveZMQ, high-water marks and a
// maximum message size.
//
// Security: libzmq lets every CURVE client in when no ZAP handler is bound, so
// a Context binds its ZAP handler before any socket can exist, and fails to
// create if it cannot. tcp:// endpoints use CURVE unless the caller turns it
// off explicitly (tests of the plain path only); ipc:// and inproc:// rely on
// file permissions and the process boundary, and use CURVE only when asked.
// Envelope signatures (fabric/envelope.h) give end-to-end authenticity on top.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <zmq.hpp>

#include "core/status.h"
#include "fabric/identity.h"
#include "fabric/trust.h"

namespace medic::fabric {

enum class Curve { kAuto, kOn, kOff };  // kAuto: on for tcp://

struct SocketOptions {
  int send_hwm = 10000;           // messages queued per peer before drop/block
  int recv_hwm = 10000;
  int64_t max_message_bytes = 4 << 20;
  int linger_ms = 0;
  Curve curve = Curve::kAuto;
  std::string routing_id;         // DEALER: the host id the ROUTER addresses
  bool router_mandatory = true;   // ROUTER: fail sends to unknown peers
  // Reconnect backoff of connecting sockets; -1 keeps libzmq's default
  // (100 ms, no growth). With a max above the interval, each failed attempt
  // doubles the wait up to the max.
  int reconnect_ivl_ms = -1;
  int reconnect_ivl_max_ms = -1;
  // PUB: return EAGAIN at the HWM instead of dropping silently, so the
  // sender can count what it could not send.
  bool pub_nodrop = false;
};

// Owns the zmq context and the ZAP handler thread. All sockets made from it
// must be closed before it is destroyed.
class Context {
 public:
  // `trust` must outlive the Context and not change while it runs.
  static Result<std::unique_ptr<Context>> create(const TrustStore& trust);
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  zmq::context_t& zmq() { return ctx_; }

  // A server socket (binds): with CURVE it authenticates as `self` and admits
  // only clients whose key is in the trust store.
  Result<zmq::socket_t> bind(zmq::socket_type type, const std::string& endpoint,
                             const Identity& self, const SocketOptions& opts = {});
  // A client socket (connects) that authenticates as `self` to a server whose
  // Ed25519 key is `server` (only used with CURVE).
  Result<zmq::socket_t> connect(zmq::socket_type type, const std::string& endpoint,
                                const Identity& self, const PublicKey& server,
                                const SocketOptions& opts = {});

  uint64_t zap_accepted() const { return zap_accepted_.load(); }
  uint64_t zap_denied() const { return zap_denied_.load(); }

 private:
  explicit Context(const TrustStore& trust);
  Status start_zap();
  void zap_loop(zmq::socket_t sock);

  zmq::context_t ctx_;
  const TrustStore& trust_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> zap_accepted_{0};
  std::atomic<uint64_t> zap_denied_{0};
  std::thread zap_thread_;
};

bool uses_curve(const std::string& endpoint, Curve c);

// Reads the ZAP user id (the trusted node's name) of a received message, or
// "" when the socket does not authenticate.
std::string peer_name(const zmq::message_t& msg);

}  // namespace medic::fabric
