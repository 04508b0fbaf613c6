#include "vmm/qmp/qmp_reset.h"

#include "core/duration.h"
#include "core/json.h"

namespace medic::vmm::qmp {

QmpReset::QmpReset(Clock& clock, std::string socket_path, Duration timeout, Done done)
    : clock_(clock),
      socket_(std::move(socket_path)),
      timeout_(timeout),
      done_(std::move(done)),
      client_(clock) {
  open_status_ = client_.open(socket_);
  limit_timer_ = clock_.schedule_after(timeout_, [this] {
    limit_timer_ = 0;
    finish(timeout_error("QMP on " + socket_ + " did not finish the reset within " +
                         format_duration(timeout_)));
  });
}

QmpReset::~QmpReset() {
  if (limit_timer_ != 0) clock_.cancel(limit_timer_);
}

void QmpReset::poll() {
  if (finished_) return;
  if (!open_status_.ok()) {
    finish(open_status_);
    return;
  }
  Status s = client_.poll();
  for (auto& r : client_.take_replies()) {
    if (r.id == waiting_id_) on_reply(std::move(r.result));
    if (finished_) return;
  }
  if (!s.ok()) {
    finish(s);
    return;
  }
  if (client_.ready() && waiting_id_ == 0) send_next();
}

void QmpReset::send_next() {
  const char* command = step_ == 0 ? "query-status" : step_ == 1 ? "system_reset" : "cont";
  auto id = client_.send(command);
  if (!id.ok()) {
    finish(id.status());
    return;
  }
  waiting_id_ = *id;
}

void QmpReset::on_reply(Result<Json> reply) {
  waiting_id_ = 0;
  if (!reply.ok()) {
    finish(reply.status());
    return;
  }
  if (step_ == 0) {
    const std::string* status = json_string_member(*reply, "status");
    resume_ = !status || *status != "running";
  }
  const bool last = step_ == 2 || (step_ == 1 && !resume_);
  ++step_;
  if (last) {
    finish(Status{});
    return;
  }
  send_next();
}

void QmpReset::finish(Status s) {
  if (finished_) return;
  finished_ = true;
  if (limit_timer_ != 0) clock_.cancel(limit_timer_);
  limit_timer_ = 0;
  client_.close();
  Done done = std::move(done_);
  done_ = nullptr;
  if (done) done(std::move(s));
}

}  // namespace medic::vmm::qmp
