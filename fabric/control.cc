#include "fabric/control.h"

#include <spdlog/spdlog.h>

namespace medic::fabric {

ControlServer::ControlServer(zmq::socket_t socket, const Identity& identity,
                             const TrustStore& trust, const Clock& clock, ControlHandler& handler)
    : socket_(std::move(socket)),
      identity_(identity),
      clock_(clock),
      handler_(handler),
      opener_(trust, clock),
      sealer_(identity) {
  opener_.expect_kinds({medic::v1::KIND_CONTROL_REQUEST});
}

Result<std::unique_ptr<ControlServer>> ControlServer::create(const std::string& endpoint,
                                                             const Party& party,
                                                             ControlHandler& handler) {
  SocketOptions opts;
  opts.max_message_bytes = 1 << 20;
  opts.router_mandatory = false;  // an operator that went away just misses its reply
  auto sock = party.ctx.bind(zmq::socket_type::router, endpoint, party.identity, opts);
  if (!sock.ok()) return sock.status();
  return std::unique_ptr<ControlServer>(
      new ControlServer(std::move(*sock), party.identity, party.trust, party.clock, handler));
}

std::string ControlServer::endpoint() const { return socket_.get(zmq::sockopt::last_endpoint); }

size_t ControlServer::poll() {
  size_t answered = 0;
  while (true) {
    zmq::message_t peer;
    if (!socket_.recv(peer, zmq::recv_flags::dontwait)) break;
    // ROUTER framing: [peer id][body] from a DEALER. Anything else is drained.
    std::vector<zmq::message_t> parts;
    bool more = peer.more();
    while (more) {
      zmq::message_t m;
      if (!socket_.recv(m, zmq::recv_flags::dontwait)) break;
      more = m.more();
      parts.push_back(std::move(m));
    }
    if (parts.size() != 1) continue;
    Opened opened;
    std::string why;
    OpenError e = opener_.open(parts[0].to_string_view(), &opened, &why);
    if (e != OpenError::kOk) {
      log_limiter_.warn(open_error_name(e), clock_.now(),
                        std::string("control: rejected a request (") + open_error_name(e) + "): " + why);
      continue;
    }
    medic::v1::ControlRequest request;
    medic::v1::ControlReply reply;
    if (!request.ParseFromString(opened.envelope.payload())) {
      reply.set_ok(false);
      reply.set_error("request from \"" + opened.sender->name + "\" does not decode");
    } else {
      reply = handler_.handle(request, opened, peer.to_string());
      reply.set_request_id(request.request_id());
    }
    send_frame(peer.to_string(), reply, opened.envelope.host());
    ++answered;
  }
  return answered;
}

void ControlServer::send(const std::string& peer, const medic::v1::ControlReply& reply) {
  send_frame(peer, reply, "");
}

void ControlServer::send_frame(const std::string& peer, const medic::v1::ControlReply& reply,
                               const std::string& host) {
  std::string frame =
      sealer_.seal(medic::v1::KIND_CONTROL_REPLY, host, reply.SerializeAsString(), clock_.now());
  socket_.send(zmq::buffer(peer), zmq::send_flags::sndmore | zmq::send_flags::dontwait);
  socket_.send(zmq::buffer(frame), zmq::send_flags::dontwait);
}

struct ControlClient::Parts {
  Parts(const ControlTarget& t, const Identity& id, const TrustStore& trust, const Clock* c)
      : target(t), clock(c ? *c : system_clock), sealer(id), opener(trust, clock) {
    opener.expect_kinds({medic::v1::KIND_CONTROL_REPLY});
  }
  ControlTarget target;
  SystemClock system_clock;
  const Clock& clock;
  Sealer sealer;
  Opener opener;
  std::unique_ptr<Context> ctx;  // outlives the socket (declared before it)
  zmq::socket_t sock;
};

ControlClient::ControlClient(std::unique_ptr<Parts> parts) : parts_(std::move(parts)) {}
ControlClient::~ControlClient() = default;

Result<std::unique_ptr<ControlClient>> ControlClient::connect(const ControlTarget& target,
                                                              const Identity& identity,
                                                              const TrustStore& trust,
                                                              const Clock* clock) {
  auto parts = std::make_unique<Parts>(target, identity, trust, clock);
  auto ctx = Context::create(trust);
  if (!ctx.ok()) return ctx.status();
  parts->ctx = std::move(*ctx);
  auto sock =
      parts->ctx->connect(zmq::socket_type::dealer, target.endpoint, identity, target.engine_key);
  if (!sock.ok()) return sock.status();
  parts->sock = std::move(*sock);
  return std::unique_ptr<ControlClient>(new ControlClient(std::move(parts)));
}

Status ControlClient::send(const medic::v1::ControlRequest& request) {
  std::string frame = parts_->sealer.seal(medic::v1::KIND_CONTROL_REQUEST, "",
                                          request.SerializeAsString(), parts_->clock.now());
  try {
    if (!parts_->sock.send(zmq::buffer(frame), zmq::send_flags::dontwait)) {
      return unavailable("the request could not be queued for " + parts_->target.endpoint);
    }
  } catch (const zmq::error_t& e) {
    return unavailable(std::string("sending the request: ") + e.what());
  }
  return {};
}

Result<medic::v1::ControlReply> ControlClient::next(const std::string& request_id,
                                                    std::chrono::milliseconds limit) {
  zmq::pollitem_t item{parts_->sock.handle(), 0, ZMQ_POLLIN, 0};
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    try {
      if (zmq::poll(&item, 1, left) <= 0) continue;
    } catch (const zmq::error_t& e) {
      if (e.num() == EINTR) continue;
      return unavailable(std::string("waiting for the engine's reply: ") + e.what());
    }
    zmq::message_t m;
    if (!parts_->sock.recv(m, zmq::recv_flags::dontwait)) continue;
    Opened opened;
    std::string why;
    if (parts_->opener.open(m.to_string_view(), &opened, &why) != OpenError::kOk) {
      return permission_denied("reply rejected: " + why);
    }
    if (opened.sender->key != parts_->target.engine_key) {
      return permission_denied("reply signed by \"" + opened.sender->name +
                               "\", not by the engine addressed");
    }
    medic::v1::ControlReply reply;
    if (!reply.ParseFromString(opened.envelope.payload())) {
      return invalid_argument("engine reply does not decode");
    }
    if (reply.request_id() != request_id) continue;
    return reply;
  }
  return timeout_error("no reply from the engine at " + parts_->target.endpoint + " within " +
                       std::to_string(limit.count()) +
                       " ms (is it running, and is this the right endpoint?)");
}

Result<medic::v1::ControlReply> send_control_request(const ControlTarget& target,
                                                     const Identity& operator_identity,
                                                     const TrustStore& trust,
                                                     const medic::v1::ControlRequest& request,
                                                     std::chrono::milliseconds limit) {
  auto client = ControlClient::connect(target, operator_identity, trust);
  if (!client.ok()) return client.status();
  if (Status s = (*client)->send(request); !s.ok()) return s;
  return (*client)->next(request.request_id(), limit);
}

}  // namespace medic::fabric
