// The operator control channel: signed requests (approve, deny, silence,
// unsilence, unfreeze, inject) and queries (status, silence list, incidents,
// hosts) from an operator's `medic` CLI to a running engine, and the
// engine's signed replies. Every field of medic.v1.ControlRequest must also
// be in fabric/schema.cc, or the server drops the request unanswered.
//
// Engine side: ControlServer binds a ROUTER, opens each request (operator
// role required, replay-guarded), hands it to a ControlHandler together with
// the verified envelope (so the audit log can keep the signed request), and
// sends back a sealed ControlReply; a handler may send more replies to the
// same peer later (ControlServer::send: the progress of an ActionRequest).
// A requester's key (role requester) may send only ActionRequests; the
// handler refuses the rest.
//
// Client side, the C++ client library: ControlClient keeps one connection
// and reads replies as they come; send_control_request() does one
// request/reply round trip with a time limit. docs/requests.md describes the
// wire for clients in other languages.
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
  // `request` is decoded from `opened`, whose sender is a trusted operator
  // or requester; `peer` is where ControlServer::send reaches the sender
  // later, while it stays connected.
  virtual medic::v1::ControlReply handle(const medic::v1::ControlRequest& request,
                                         const Opened& opened, const std::string& peer) = 0;
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
  // Sends one more reply to `peer` (a handler's, from handle()). Dropped
  // when the peer went away or cannot take it now: a client that left just
  // misses it.
  void send(const std::string& peer, const medic::v1::ControlReply& reply);
  const OpenCounters& rejections() const { return opener_.counters(); }
  // Its replay guard, for keeping the marks across restarts.
  Opener& opener() { return opener_; }

 private:
  ControlServer(zmq::socket_t socket, const Identity& identity, const TrustStore& trust,
                const Clock& clock, ControlHandler& handler);

  void send_frame(const std::string& peer, const medic::v1::ControlReply& reply,
                  const std::string& host);

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

// One connection to an engine's control endpoint: requests out, the
// engine's signed replies in, as they come. `identity` and `trust` (and
// `clock`, which stamps requests and bounds replies' skew; the system clock
// when null) must outlive it. Not thread-safe.
class ControlClient {
 public:
  static Result<std::unique_ptr<ControlClient>> connect(const ControlTarget& target,
                                                        const Identity& identity,
                                                        const TrustStore& trust,
                                                        const Clock* clock = nullptr);
  ~ControlClient();
  ControlClient(const ControlClient&) = delete;
  ControlClient& operator=(const ControlClient&) = delete;

  // Signs and sends `request` (never blocks).
  Status send(const medic::v1::ControlRequest& request);
  // The next reply to request `request_id` (others are skipped), waiting at
  // most `limit`. kTimeout when none comes; kPermissionDenied when a reply is
  // not signed by the engine addressed; kInvalidArgument when it does not
  // decode.
  Result<medic::v1::ControlReply> next(const std::string& request_id,
                                       std::chrono::milliseconds limit);

 private:
  struct Parts;
  explicit ControlClient(std::unique_ptr<Parts> parts);
  std::unique_ptr<Parts> parts_;
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
