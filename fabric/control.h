// The operator control channel: signed requests (approve, deny, silence,
// unsilence, unfreeze, inject) and queries (status, silence list, incidents,
// hosts) from an operator's `medic` CLI to a running engine, and the
// engine's signed replies. Every field of medic.v1.ControlRequest must also
// be in fabric/schema.cc, or the server drops the request unanswered.
//
// Engine side: ControlServer binds a ROUTER, opens each request (operator
// role required, replay-guarded), hands it to a ControlHandler together with
// the verified envelope (so the audit log can keep the signed request), and
// sends back a sealed ControlReply. Client side: send_control_request() does
// one request/reply round trip with a time limit.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "core/log.h"
#include "fabric/envelope.h"
#include "fabric/party.h"
#include "fabric/transport.h"
#include "medic/v1/control.pb.h"

namespace medic::fabric {

class ControlHandler {
 public:
  virtual ~ControlHandler() = default;
  // `request` is decoded from `opened`, whose sender is a trusted operator.
  virtual medic::v1::ControlReply handle(const medic::v1::ControlRequest& request,
                                         const Opened& opened) = 0;
};

class ControlServer {
 public:
  // Binds `endpoint` (CURVE on tcp://). What `party` names and `handler`
  // must outlive the server.
  static Result<std::unique_ptr<ControlServer>> create(const std::string& endpoint,
                                                       const Party& party, ControlHandler& handler);

  zmq::socket_t& socket() { return socket_; }
  // The endpoint actually bound (resolves a "*" port).
  std::string endpoint() const;
  // Handles every request waiting on the socket; never blocks. Returns how
  // many requests were answered (rejected ones are counted, not answered).
  size_t poll();
  const OpenCounters& rejections() const { return opener_.counters(); }
  // Its replay guard, for keeping the marks across restarts.
  Opener& opener() { return opener_; }

 private:
  ControlServer(zmq::socket_t socket, const Identity& identity, const TrustStore& trust,
                const Clock& clock, ControlHandler& handler);

  zmq::socket_t socket_;
  const Identity& identity_;
  const Clock& clock_;
  ControlHandler& handler_;
  Opener opener_;
  Sealer sealer_;
  LogLimiter log_limiter_;
};

struct ControlTarget {
  std::string endpoint;     // engine control endpoint, e.g. tcp://127.0.0.1:7703
  PublicKey engine_key{};   // the engine's identity (CURVE server key and reply signer)
};

// Sends one signed request and waits for the engine's signed reply.
// kTimeout when no reply comes within `limit`; kPermissionDenied when the
// reply is not from a trusted engine.
Result<medic::v1::ControlReply> send_control_request(const ControlTarget& target,
                                                     const Identity& operator_identity,
                                                     const TrustStore& trust,
                                                     const medic::v1::ControlRequest& request,
                                                     std::chrono::milliseconds limit);

}  // namespace medic::fabric
