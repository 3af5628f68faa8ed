#include "coordinator/relay.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>

#include "coordinator/attempt.hpp"
#include "coordinator/client_response.hpp"
#include "coordinator/errors.hpp"
#include "coordinator/http_util.hpp"
#include "coordinator/model_catalog.hpp"
#include "coordinator/relay_deadlines.hpp"

namespace coordinator {

namespace {

awaitable<void> cancel_then_recycle(std::string name, std::string host, int port, std::string req_id,
                                    Clock::duration timeout, ExtraHeaders auth,
                                    std::function<void(std::size_t, std::string)> recycle, std::size_t child,
                                    std::string why) {
  if (!req_id.empty()) {
    co_await cancel_on_child(name, host, port, req_id, timeout, std::move(auth));
  }
  if (recycle) recycle(child, why);
}

awaitable<void> cancel_in_background(std::string name, std::string host, int port, std::string req_id,
                                     Clock::duration timeout, ExtraHeaders auth) {
  co_await cancel_on_child(std::move(name), std::move(host), port, std::move(req_id), timeout, std::move(auth));
}

RelayDeadlines::Limits limits_of(const Config& config) {
  return {config.queue_timeout, config.request_timeout, config.stream_idle_timeout, config.stall_timeout,
          config.sse_heartbeat};
}

// An attempt's entry in ActiveRelays, for as long as it runs.
struct RegisteredAttempt {
  RegisteredAttempt(ActiveRelays* active, std::size_t child, RelaySignals* signals)
      : active_(active), child_(child), signals_(signals) {
    if (active_ != nullptr) active_->add_attempt(child_, signals_);
  }
  ~RegisteredAttempt() {
    if (active_ != nullptr) active_->remove_attempt(child_, signals_);
  }
  RegisteredAttempt(const RegisteredAttempt&) = delete;
  RegisteredAttempt& operator=(const RegisteredAttempt&) = delete;

 private:
  ActiveRelays* active_;
  std::size_t child_;
  RelaySignals* signals_;
};

// One relayed request: waits for a child, runs attempts on children until
// one is answered, decides from each attempt's outcome whether the next child
// gets the request, and reports what each child did to the registry.
class Relay {
 public:
  Relay(ForwardContext& context, TcpStream& client, const http::request<http::string_body>& request,
        bool stream_requested, bool takes_slot, bool client_keep_alive, std::string client_address,
        RequestedModel model, ProtocolAnswer* protocol)
      : context_(context),
        config_(context.config),
        client_(client),
        request_(request),
        stream_requested_(stream_requested),
        takes_slot_(takes_slot),
        requested_model_(std::move(model)),
        signals_(std::make_shared<RelaySignals>()),
        deadlines_(limits_of(context.config)),
        response_(client, request, client_keep_alive, context.config.client_send_timeout, deadlines_, signals_,
                  protocol),
        timer_(client.get_executor()),
        answer_watch_([this](const std::string& req_id) { found_req_id(req_id); }),
        settings_{context.config.connect_timeout, stream_requested},
        child_request_(request, client_address) {}

  // Before dispatch(); forward_request runs begin, dispatch and result on its
  // own frame (a coroutine frame less per request).
  void begin() {
    deadlines_.begin(Clock::now());
    signals_->client = &client_.socket();
    signals_->model = model();
  }

  awaitable<void> dispatch();

  // After dispatch(): what happened, with every watcher stopped.
  ForwardResult result() {
    // Stop the watchers before the client socket is used for the next request.
    signals_->detach();
    if (const auto& req_id = answer_watch_.req_id()) {
      context_.registry.forget_req_id(*req_id);
      if (context_.active != nullptr) context_.active->remove(*req_id);
    }
    if (signals_->client_watched) {
      // The client watch may still wait on the socket.
      error_code ignored;
      client_.socket().cancel(ignored);
    }
    timer_.cancel();
    const bool answered = response_.status() >= 200 && response_.status() < 300;
    ForwardResult result;
    result.status = response_.status();
    result.child = child_name_;
    result.client_reusable = response_.reusable();
    result.bytes_sent = response_.bytes_sent();
    result.stream_ttfb = response_.stream_ttfb();
    if (answered) result.usage = answer_watch_.usage();
    return result;
  }

 private:
  struct Acquired {
    std::optional<std::size_t> child;
    bool answered = false;  // the client was answered (or left) while waiting
    // No child: every one that could serve it is cooling for it until then.
    std::optional<Clock::time_point> cooling_until;
  };

  std::optional<Acquired> acquire_now(const std::vector<bool>& tried);
  awaitable<Acquired> wait_in_queue(const std::vector<bool>& tried);
  void report(std::size_t child, const AttemptOutcome& outcome);
  awaitable<void> fail_after_attempts(bool attempted, const std::string& last_error);
  awaitable<void> end(std::size_t child, const AttemptOutcome& outcome);
  awaitable<void> fail_or_abort(errc before_answer, std::string why);
  std::string_view model() const { return requested_model_.view(); }
  bool model_missing() const;
  awaitable<void> fail_model_missing();
  awaitable<void> fail_all_cooling(Clock::time_point first_end);
  void cancel_work(std::size_t child);
  void found_req_id(const std::string& req_id);
  long seconds_until_first_cooldown_ends() const;

  ForwardContext& context_;
  const Config& config_;
  TcpStream& client_;
  const http::request<http::string_body>& request_;
  const bool stream_requested_;
  const bool takes_slot_;
  const RequestedModel requested_model_;  // empty: any child
  std::shared_ptr<RelaySignals> signals_;
  RelayDeadlines deadlines_;
  ClientResponse response_;
  SteadyTimer timer_;
  AnswerWatch answer_watch_;
  const AttemptSettings settings_;
  ChildRequest child_request_;
  std::optional<std::size_t> current_child_;
  std::string child_name_;   // the child that answered, for the access log
  bool all_limited_ = true;  // every attempt so far was refused for a 429 or for quota
  bool any_quota_ = false;
};

awaitable<void> Relay::dispatch() {
  if (model_missing()) {
    co_await fail_model_missing();
    co_return;
  }
  std::vector<bool> tried(context_.registry.size(), false);
  std::string last_error;
  bool attempted = false;
  while (true) {
    // A free child is taken at once, without a coroutine frame; only a wait queues.
    Acquired acquired;
    if (const std::optional<Acquired> now = acquire_now(tried)) {
      acquired = *now;
    } else {
      acquired = co_await wait_in_queue(tried);
    }
    if (acquired.answered) co_return;
    if (acquired.cooling_until) {
      co_await fail_all_cooling(*acquired.cooling_until);
      co_return;
    }
    if (!acquired.child) break;
    const std::size_t child = *acquired.child;
    if (child >= tried.size()) tried.resize(context_.registry.size(), false);  // a slot added by a reload
    tried[child] = true;
    if (!attempted) deadlines_.start(Clock::now(), stream_requested_);  // time spent queued does not count
    attempted = true;
    AttemptOutcome outcome;
    {
      // The attempt runs on this frame (a coroutine frame less per request).
      current_child_ = child;
      answer_watch_.new_attempt();
      const RegisteredAttempt registered(context_.active, child, signals_.get());
      ChildAttempt attempt(child, context_.registry.at(child), context_.pool, child_request_, response_, deadlines_,
                           signals_, timer_, answer_watch_, settings_);
      outcome = co_await attempt.run();
    }
    if (outcome.status != 0 || outcome.end != AttemptEnd::refused) child_name_ = context_.registry.at(child).name;
    // Reported before the slot is released: a waiter must not get a child that is cooling now.
    report(child, outcome);
    if (takes_slot_) context_.dispatcher.release(child, outcome.end != AttemptEnd::refused && response_.status() != 0);
    if (outcome.end != AttemptEnd::refused) {
      co_await end(child, outcome);
      co_return;
    }
    const Child& failed = context_.registry.at(child);
    last_error = failed.name + ": " + outcome.error;
    if (context_.metrics) context_.metrics->count_retry();
    if (outcome.rate_limited || outcome.quota) {
      spdlog::warn("child {} is {} ({}); trying the next ready child", failed.name,
                   outcome.quota ? "out of quota" : "rate limited", outcome.error);
      any_quota_ = any_quota_ || outcome.quota;
    } else {
      all_limited_ = false;
      spdlog::warn("child {} failed a forwarded request ({}); trying the next ready child", failed.name, outcome.error);
    }
    if (signals_->client_gone) co_return;
  }
  co_await fail_after_attempts(attempted, last_error);
}

// What the child did, told to the registry; the control plane's timers end
// any cooldown this starts.
void Relay::report(std::size_t child, const AttemptOutcome& outcome) {
  const auto now = Clock::now();
  Registry& registry = context_.registry;
  if (outcome.relayed) {
    // Outlier detection: a run of server errors takes the child out of rotation.
    const OutlierPolicy policy{config_.eject_after, config_.eject_time, config_.eject_time * 10};
    registry.report_answer(child, outcome.status, policy, now);
  }
  if (outcome.connect_failed && context_.metrics) context_.metrics->count_connect_error(registry.at(child).name);
  const auto until = [&](Clock::duration fallback) {
    const auto wait = outcome.retry_after ? to_duration(*outcome.retry_after) : fallback;
    return now + std::max<Clock::duration>(wait, std::chrono::milliseconds(1));
  };
  // A request that names a model cools only that model of the account; one
  // that names none ran on whatever model the page had: the whole child cools.
  if (outcome.rate_limited && !model().empty()) {
    registry.report_model_limited(child, model(), until(config_.cooldown), CoolingCause::rate_limited,
                                  "rate limited (429)", now);
  } else if (outcome.rate_limited) {
    registry.report_rate_limited(child, until(config_.cooldown), now);
  } else if (!outcome.quota_reason.empty() && !model().empty()) {
    registry.report_model_limited(child, model(), until(config_.quota_cooldown), CoolingCause::quota,
                                  outcome.quota_reason, now);
  } else if (!outcome.quota_reason.empty()) {
    registry.report_quota_exhausted(child, until(config_.quota_cooldown), outcome.quota_reason, now);
  } else if (outcome.end == AttemptEnd::refused && !outcome.quota) {
    registry.report_forward_failure(child, outcome.error, now);
  }
}

// The children serve, and none lists the model (unknown lists count as any model).
bool Relay::model_missing() const {
  return !model().empty() && context_.registry.no_serving_child_has(model());
}

awaitable<void> Relay::fail_model_missing() {
  const auto known = model_ids(context_.registry.serving_model_sets());
  co_await response_.fail(errc::model_not_found, model_not_found_message(model(), known));
}

// Every child that could serve the request is out of quota (or rate limited)
// for it past the queue timeout: 429 with the seconds until the first is back.
awaitable<void> Relay::fail_all_cooling(Clock::time_point first_end) {
  const double seconds = std::chrono::duration<double>(first_end - Clock::now()).count();
  const long retry_after = std::max(1L, static_cast<long>(std::ceil(seconds)));
  const std::string what = model().empty() ? std::string("this request") : "model " + std::string(model());
  co_await response_.fail(errc::quota_exhausted,
                          fmt::format("Every child that serves {} is out of quota or rate limited for it; the "
                                      "first is back in {} s.",
                                      what, retry_after),
                          retry_after);
}

awaitable<void> Relay::fail_after_attempts(bool attempted, const std::string& last_error) {
  // Refused while queued: the children that might have served it learned they do not.
  if (!attempted && model_missing()) {
    co_await fail_model_missing();
  } else if (!attempted) {
    co_await response_.fail(errc::no_healthy_children, "No healthy child proxies available.");
  } else if (all_limited_ && any_quota_) {
    // The real child's 530: its account is spent; no other child could take the request.
    co_await response_.fail(errc::quota_exhausted,
                            "Every child that could take this request is out of quota; last: " + last_error,
                            seconds_until_first_cooldown_ends());
  } else if (all_limited_) {
    co_await response_.fail(errc::all_children_rate_limited, "Every child is rate limited; last: " + last_error);
  } else {
    co_await response_.fail(errc::all_children_failed, "Every ready child failed this request; last: " + last_error);
  }
}

// An attempt that ended without a complete answer: the client gets what fits
// the reason; the child's work is cancelled where that helps.
awaitable<void> Relay::end(std::size_t child, const AttemptOutcome& outcome) {
  const Child& chosen = context_.registry.at(child);
  const auto& req_id = answer_watch_.req_id();
  const auto seconds = [](Clock::duration value) {
    return std::to_string(std::chrono::duration_cast<std::chrono::seconds>(value).count());
  };
  switch (outcome.end) {
    case AttemptEnd::answered:
    case AttemptEnd::refused:
      co_return;
    case AttemptEnd::client_gone:
      spdlog::info("client left a request to child {}; closing the upstream{}", chosen.name,
                   req_id ? " and cancelling " + *req_id : std::string{});
      if (req_id) cancel_work(child);
      co_return;
    case AttemptEnd::cancelled:
      spdlog::info("relay of {} cancelled", req_id.value_or("?"));
      co_await response_.fail(errc::request_cancelled,
                              "Request " + req_id.value_or("") + " was cancelled (POST /v1/cancel).");
      co_return;
    case AttemptEnd::stalled: {
      const std::string why =
          fmt::format("child {} sent nothing for {:.1f} s (stalled)", chosen.name, to_seconds(config_.stall_timeout));
      spdlog::warn("{}; recycling it", why);
      co_await fail_or_abort(errc::upstream_stalled, why);
      // The cancel must reach the child before it is stopped.
      if (context_.metrics && req_id) context_.metrics->count_cancel();
      net::co_spawn(client_.get_executor(),
                    cancel_then_recycle(chosen.name, chosen.host, chosen.ports.api, req_id.value_or(""),
                                        config_.cancel_timeout, credentials_of(request_), context_.recycle, child, why),
                    LogEscapedException{"stall recycle"});
      co_return;
    }
    case AttemptEnd::timed_out:
    case AttemptEnd::broke_off:
      break;
  }
  const bool idle = outcome.expiry == Expiry::idle;
  if (!outcome.mid_answer) {
    const std::string why = "child " + chosen.name + " did not answer within " +
                            seconds(idle ? config_.stream_idle_timeout : config_.request_timeout) + " s";
    spdlog::warn("{}", why);
    co_await fail_or_abort(errc::upstream_timeout, why);
    co_return;
  }
  const std::string why =
      outcome.end == AttemptEnd::broke_off ? "child " + chosen.name + " broke off: " + outcome.error
      : idle ? "child " + chosen.name + " was silent for " + seconds(config_.stream_idle_timeout) + " s"
             : "child " + chosen.name + " exceeded the request timeout";
  spdlog::warn("{}", why);
  if (outcome.end == AttemptEnd::broke_off) context_.registry.report_forward_failure(child, why, Clock::now());
  if (req_id) cancel_work(child);
  co_await response_.abort(errc::child_stream_aborted, why);
}

// Before the answer started, the error `before_answer`; after (heartbeats
// committed a stream), the event that ends the stream.
awaitable<void> Relay::fail_or_abort(errc before_answer, std::string why) {
  if (response_.committed()) {
    co_await response_.abort(errc::child_stream_aborted, std::move(why));
  } else {
    co_await response_.fail(before_answer, std::move(why));
  }
}

void Relay::cancel_work(std::size_t child) {
  const Child& target = context_.registry.at(child);
  if (context_.metrics) context_.metrics->count_cancel();
  net::co_spawn(client_.get_executor(),
                cancel_in_background(target.name, target.host, target.ports.api, *answer_watch_.req_id(),
                                     config_.cancel_timeout, credentials_of(request_)),
                LogEscapedException{"cancel"});
}

void Relay::found_req_id(const std::string& req_id) {
  if (current_child_) context_.registry.remember_req_id(req_id, *current_child_);
  if (context_.active != nullptr) context_.active->add(req_id, signals_);
}

// A child for this request: at once, or after waiting in the queue.
std::optional<Relay::Acquired> Relay::acquire_now(const std::vector<bool>& tried) {
  if (!takes_slot_) return Acquired{context_.dispatcher.pick_without_slot(tried), false, std::nullopt};
  const auto choice = context_.dispatcher.acquire(tried, model());
  if (choice.verdict == Dispatcher::Verdict::granted) return Acquired{choice.child, false, std::nullopt};
  if (choice.verdict == Dispatcher::Verdict::none) return Acquired{};
  if (choice.verdict == Dispatcher::Verdict::cooling) return Acquired{std::nullopt, false, choice.cooling_until};
  return std::nullopt;  // every child that could take it is busy (or cooling briefly): the caller queues
}

awaitable<Relay::Acquired> Relay::wait_in_queue(const std::vector<bool>& tried) {
  deadlines_.start_queue(Clock::now());
  Waiter waiter;
  waiter.tried = &tried;
  waiter.model = model();
  if (context_.api_keys != nullptr && context_.api_keys->enabled()) {
    // The key has been checked at the edge; it only tells whose turn it is.
    waiter.key = request_key(request_).value_or("");
  }
  waiter.wake = [signals = signals_] {
    if (signals->queue_timer != nullptr) signals->queue_timer->cancel();
  };
  if (!context_.dispatcher.enqueue(&waiter)) {
    co_await response_.fail(errc::queue_full, "Every child is busy and the wait queue is full; retry later.");
    co_return Acquired{std::nullopt, true, std::nullopt};
  }
  struct LeaveQueue {
    Dispatcher& dispatcher;
    Waiter& waiter;
    ~LeaveQueue() { dispatcher.remove(&waiter); }
  } leave_queue{context_.dispatcher, waiter};
  deadlines_.client_watched();
  if (!signals_->client_watched) watch_client(signals_);  // a client that leaves frees its place at once
  signals_->queue_timer = &timer_;
  signals_->timer_armed = false;  // the queue's waits replace any wait armed by a read
  // A streamed request that waits longer than --sse-heartbeat gets its SSE
  // head and heartbeats, so that nothing in between cuts the silent connection.
  const bool beat = stream_requested_ || response_.reading_events();
  while (!waiter.granted && !waiter.refused && !signals_->client_gone && !deadlines_.queue_expired(Clock::now())) {
    if (beat && deadlines_.heartbeat_due(Clock::now())) {
      co_await response_.heartbeat();  // a failed write marks the client gone
      continue;
    }
    timer_.expires_at(deadlines_.next_queue_wake(beat));
    error_code ec;
    co_await timer_.async_wait(use_awaitable_ec(ec));
  }
  signals_->queue_timer = nullptr;
  if (signals_->client_gone) {
    if (waiter.granted) context_.dispatcher.release(*waiter.granted, false);
    co_return Acquired{std::nullopt, true, std::nullopt};
  }
  if (waiter.granted) co_return Acquired{waiter.granted, false, std::nullopt};
  if (waiter.refused) co_return Acquired{};
  co_await response_.fail(errc::queue_timeout, "No child became free within the queue timeout; retry later.");
  co_return Acquired{std::nullopt, true, std::nullopt};
}

// Whole seconds until the first cooling child is back (at least 1).
long Relay::seconds_until_first_cooldown_ends() const {
  const auto now = Clock::now();
  auto first = Clock::time_point::max();
  for (const Child& child : context_.registry.children()) {
    if (child.state == ChildState::cooling && child.cooling_until > now) first = std::min(first, child.cooling_until);
  }
  if (first == Clock::time_point::max()) return 0;  // the table's Retry-After
  const double seconds = std::chrono::duration<double>(first - now).count();
  return std::max(1L, static_cast<long>(std::ceil(seconds)));
}

}  // namespace

void report_quota_from_child_log(ForwardContext& context, std::size_t child, const std::string& why) {
  const auto now = Clock::now();
  const auto until = now + context.config.quota_cooldown;
  // The log line names no model: the models the child's requests asked for
  // cool, or the whole child when one of them named none (or none is in flight).
  const auto models = context.active != nullptr ? context.active->models_on(child) : std::vector<std::string>{};
  if (models.empty()) context.registry.report_quota_exhausted(child, until, why, now);
  for (const std::string& model : models) {
    context.registry.report_model_limited(child, model, until, CoolingCause::quota, why, now);
  }
  if (context.active != nullptr) context.active->retry_elsewhere(child);
}

awaitable<bool> forward_request(ForwardContext& context, TcpStream& client,
                                const http::request<http::string_body>& request, bool stream_requested, bool takes_slot,
                                bool client_keep_alive, std::string client_address, RequestedModel model,
                                ForwardResult& result, ProtocolAnswer* protocol) {
  Relay relay(context, client, request, stream_requested, takes_slot, client_keep_alive, std::move(client_address),
              std::move(model), protocol);
  relay.begin();
  co_await relay.dispatch();
  result = relay.result();
  result.took_slot = takes_slot;
  co_return result.client_reusable;
}

}  // namespace coordinator
