#include "fabric/transport.h"

#include <spdlog/spdlog.h>

#include <cstring>

namespace medic::fabric {
namespace {

constexpr const char* kZapEndpoint = "inproc://zeromq.zap.01";
constexpr const char* kZapDomain = "medic";

void apply_common(zmq::socket_t& s, const SocketOptions& o) {
  s.set(zmq::sockopt::sndhwm, o.send_hwm);
  s.set(zmq::sockopt::rcvhwm, o.recv_hwm);
  s.set(zmq::sockopt::maxmsgsize, o.max_message_bytes);
  s.set(zmq::sockopt::linger, o.linger_ms);
  if (o.reconnect_ivl_ms >= 0) s.set(zmq::sockopt::reconnect_ivl, o.reconnect_ivl_ms);
  if (o.reconnect_ivl_max_ms >= 0) s.set(zmq::sockopt::reconnect_ivl_max, o.reconnect_ivl_max_ms);
  if (o.pub_nodrop) s.set(zmq::sockopt::xpub_nodrop, true);
}

}  // namespace

bool uses_curve(const std::string& endpoint, Curve c) {
  if (c == Curve::kOn) return true;
  if (c == Curve::kOff) return false;
  return endpoint.rfind("tcp://", 0) == 0;
}

Context::Context(const TrustStore& trust) : ctx_(1), trust_(trust) {}

Context::~Context() {
  stop_ = true;
  if (zap_thread_.joinable()) zap_thread_.join();
}

Result<std::unique_ptr<Context>> Context::create(const TrustStore& trust) {
  if (!crypto_ready()) return internal_error("libsodium failed to initialise");
  if (!zmq_has("curve")) return failed_precondition("this libzmq was built without CURVE support");
  std::unique_ptr<Context> ctx(new Context(trust));
  MEDIC_RETURN_IF_ERROR(ctx->start_zap());
  return ctx;
}

Status Context::start_zap() {
  try {
    zmq::socket_t sock(ctx_, zmq::socket_type::rep);
    sock.set(zmq::sockopt::linger, 0);
    sock.bind(kZapEndpoint);
    zap_thread_ = std::thread([this, s = std::move(sock)]() mutable { zap_loop(std::move(s)); });
  } catch (const zmq::error_t& e) {
    return unavailable(std::string("cannot bind the ZAP handler: ") + e.what());
  }
  return {};
}

// Answers ZAP requests (RFC 27): admits a CURVE client only if its key is in
// the trust store, and names it by its trusted name as the user id.
void Context::zap_loop(zmq::socket_t sock) {
  zmq::pollitem_t item{sock.handle(), 0, ZMQ_POLLIN, 0};
  while (!stop_.load()) {
    try {
      if (zmq::poll(&item, 1, std::chrono::milliseconds(100)) <= 0) continue;
      std::vector<zmq::message_t> frames;
      while (true) {
        zmq::message_t m;
        if (!sock.recv(m, zmq::recv_flags::dontwait)) break;
        bool more = m.more();
        frames.push_back(std::move(m));
        if (!more) break;
      }
      std::string request_id = frames.size() > 1 ? frames[1].to_string() : "";
      std::string status = "400", text = "malformed ZAP request", user;
      if (frames.size() >= 6) {
        std::string domain = frames[2].to_string();
        std::string mechanism = frames[5].to_string();
        if (mechanism == "CURVE" && frames.size() >= 7 && frames[6].size() == 32) {
          CurveKey ck;
          std::memcpy(ck.data(), frames[6].data(), 32);
          const TrustedNode* node = trust_.find_curve(ck);
          if (node && domain == kZapDomain) {
            status = "200";
            text = "OK";
            user = node->name;
          } else {
            text = "client key not in the trust store";
          }
        } else {
          text = "mechanism " + mechanism + " not allowed";
        }
      }
      (status == "200" ? zap_accepted_ : zap_denied_).fetch_add(1);
      if (status != "200") spdlog::warn("fabric: refused a connection: {}", text);
      sock.send(zmq::str_buffer("1.0"), zmq::send_flags::sndmore);
      sock.send(zmq::buffer(request_id), zmq::send_flags::sndmore);
      sock.send(zmq::buffer(status), zmq::send_flags::sndmore);
      sock.send(zmq::buffer(text), zmq::send_flags::sndmore);
      sock.send(zmq::buffer(user), zmq::send_flags::sndmore);
      sock.send(zmq::str_buffer(""), zmq::send_flags::none);
    } catch (const zmq::error_t& e) {
      if (e.num() == ETERM) return;
      if (e.num() == EINTR) continue;  // a signal for the process, not for us
      spdlog::error("fabric: ZAP handler: {}", e.what());
    }
  }
}

Result<zmq::socket_t> Context::bind(zmq::socket_type type, const std::string& endpoint,
                                    const Identity& self, const SocketOptions& opts) {
  try {
    zmq::socket_t s(ctx_, type);
    apply_common(s, opts);
    if (type == zmq::socket_type::router) s.set(zmq::sockopt::router_mandatory, opts.router_mandatory);
    if (uses_curve(endpoint, opts.curve)) {
      s.set(zmq::sockopt::curve_server, true);
      s.set(zmq::sockopt::curve_secretkey, zmq::const_buffer(self.curve_secret().data(), 32));
      s.set(zmq::sockopt::zap_domain, kZapDomain);
    }
    s.bind(endpoint);
    return s;
  } catch (const zmq::error_t& e) {
    return unavailable("cannot bind " + endpoint + ": " + e.what());
  }
}

Result<zmq::socket_t> Context::connect(zmq::socket_type type, const std::string& endpoint,
                                       const Identity& self, const PublicKey& server,
                                       const SocketOptions& opts) {
  try {
    zmq::socket_t s(ctx_, type);
    apply_common(s, opts);
    if (!opts.routing_id.empty()) s.set(zmq::sockopt::routing_id, opts.routing_id);
    if (uses_curve(endpoint, opts.curve)) {
      auto server_curve = curve_public_key(server);
      if (!server_curve.ok()) return server_curve.status();
      s.set(zmq::sockopt::curve_serverkey, zmq::const_buffer(server_curve->data(), 32));
      s.set(zmq::sockopt::curve_publickey, zmq::const_buffer(self.curve_public().data(), 32));
      s.set(zmq::sockopt::curve_secretkey, zmq::const_buffer(self.curve_secret().data(), 32));
    }
    s.connect(endpoint);
    return s;
  } catch (const zmq::error_t& e) {
    return unavailable("cannot connect to " + endpoint + ": " + e.what());
  }
}

std::string peer_name(const zmq::message_t& msg) {
  const char* v = zmq_msg_gets(const_cast<zmq_msg_t*>(msg.handle()), "User-Id");
  return v ? v : "";
}

}  // namespace medic::fabric
