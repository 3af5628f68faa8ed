#include "coordinator/relay.hpp"

#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <array>
#include <cmath>
#include <limits>
#include <memory>
#include <sstream>

#include "coordinator/child_answers.hpp"
#include "coordinator/http_util.hpp"
#include "coordinator/responses.hpp"

namespace coordinator {

namespace {

constexpr std::size_t kRelayBufferBytes = std::size_t{16} * 1024;
constexpr std::size_t kReqIdScanBytes = std::size_t{8} * 1024;
// A child's error answer is read whole to be put in the OpenAI shape; one
// larger than this is relayed as it is.
constexpr std::size_t kMaxErrorBody = std::size_t{64} * 1024;
constexpr std::string_view kHeartbeat = ": keep-alive\n\n";
constexpr auto kNever = Clock::time_point::max();

constexpr int kRetryAfterSeconds = 5;

enum class ReadStatus { ok, upstream_error, client_gone, idle_timeout, total_timeout, stalled, cancelled, quota_retry };

// Shared with the timer and client-watch handlers, which may run after the
// relay has moved on: they act only while `generation` still matches.
struct WatchState {
  beast::tcp_stream* upstream = nullptr;
  tcp::socket* client = nullptr;
  net::steady_timer* queue_timer = nullptr;  // set while the request waits for a child
  unsigned generation = 0;
  bool tick = false;
  bool client_gone = false;
  bool cancelled = false;    // POST /v1/cancel/{req_id} ended this relay
  bool quota_retry = false;  // the child's log showed a quota signal: go elsewhere if nothing was delivered
};

// Steers a relay from outside: sets `flag` and wakes its read from the child.
// A cancel (`cancelled`) then closes the upstream connection, which is what
// stops the real child's page; a quota signal (`quota_retry`) sends a request
// that has delivered nothing to another child.
void interrupt_relay(const std::weak_ptr<WatchState>& weak, bool WatchState::*flag) {
  const auto watch = weak.lock();
  if (!watch) return;
  (*watch).*flag = true;
  error_code ignored;
  if (watch->upstream != nullptr) watch->upstream->socket().cancel(ignored);
}

// Notices a client that goes away while the relay waits on the child, so the
// child is released at once rather than at the next write.
void watch_client(const std::shared_ptr<WatchState>& watch) {
  if (watch->client == nullptr) return;
  watch->client->async_wait(tcp::socket::wait_read, [watch](error_code ec) {
    if (ec || watch->client == nullptr) return;
    char byte = 0;
    const auto received = ::recv(watch->client->native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (received > 0) return;  // a pipelined request: the client is still there
    if (received < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
      watch_client(watch);
      return;
    }
    watch->client_gone = true;
    error_code ignored;
    if (watch->upstream != nullptr) watch->upstream->socket().cancel(ignored);
    if (watch->queue_timer != nullptr) watch->queue_timer->cancel();
  });
}

awaitable<void> cancel_then_recycle(std::string name, std::string host, int port, std::string req_id,
                                    Clock::duration timeout, ExtraHeaders auth,
                                    std::function<void(std::size_t, std::string)> recycle, std::size_t child,
                                    std::string why) {
  if (!req_id.empty()) co_await cancel_on_child(name, host, port, req_id, timeout, std::move(auth));
  if (recycle) recycle(child, why);
}

awaitable<void> cancel_in_background(std::string name, std::string host, int port, std::string req_id,
                                     Clock::duration timeout, ExtraHeaders auth) {
  co_await cancel_on_child(std::move(name), std::move(host), port, std::move(req_id), timeout, std::move(auth));
}

// Ends a child's time in `cooling` (a 429 cooldown or an ejection) at its deadline,
// unless something else changed the state meanwhile.
awaitable<void> end_cooldown(Registry* registry, std::size_t index, Clock::time_point until) {
  net::steady_timer timer(co_await net::this_coro::executor);
  timer.expires_at(until);
  error_code ec;
  co_await timer.async_wait(use_awaitable_ec(ec));
  const Child& child = registry->at(index);
  if (child.state == ChildState::cooling && child.cooling_until <= Clock::now()) {
    registry->apply(index, ChildEvent::cooldown_over, {}, Clock::now());
  }
}

// A quota signal: the child cools down until `until`. The timer is started also
// when it was cooling already: its deadline moved, and each timer ends the
// cooldown only once the latest deadline has passed.
void cool_down_for_quota_until(Registry& registry, const net::any_io_executor& executor, std::size_t child,
                               Clock::time_point until, const std::string& why) {
  registry.report_quota_exhausted(child, until, why, Clock::now());
  if (registry.at(child).state == ChildState::cooling) {
    net::co_spawn(executor, end_cooldown(&registry, child, until), LogEscapedException{"quota cooldown"});
  }
}

// Seconds from a Retry-After header (delta-seconds form), if usable.
std::optional<double> retry_after_seconds(std::string_view value) {
  if (value.empty() || value.size() > 9 || value.find_first_not_of("0123456789") != std::string_view::npos) {
    return std::nullopt;
  }
  return std::stod(std::string(value));
}

bool is_event_stream(std::string_view content_type) {
  return content_type.substr(0, std::min<std::size_t>(content_type.size(), 17)) == "text/event-stream";
}

class Relay {
 public:
  Relay(ForwardContext& context, beast::tcp_stream& client, const http::request<http::string_body>& request,
        bool stream_requested, bool takes_slot, bool client_keep_alive, std::string client_address)
      : context_(context),
        config_(context.config),
        client_(client),
        request_(request),
        stream_mode_(stream_requested),
        stream_requested_(stream_requested),
        takes_slot_(takes_slot),
        client_address_(std::move(client_address)),
        client_keep_alive_(client_keep_alive),
        client_chunked_ok_(request.version() >= 11),
        timer_(client.get_executor()),
        watch_(std::make_shared<WatchState>()) {
    build_upstream_request();
  }

  void start_deadlines() {
    const auto start = Clock::now();
    total_deadline_ = stream_mode_ ? kNever : start + to_duration(config_.request_timeout);
    idle_deadline_ = stream_mode_ ? start + to_duration(config_.stream_idle_timeout) : kNever;
    heartbeat_due_ = start + heartbeat_period();
  }

  awaitable<ForwardResult> run() {
    start_deadlines();

    watch_->client = &client_.socket();
    watch_client(watch_);
    co_await dispatch();
    // Stop the watchers before the client socket is used for the next request.
    watch_->client = nullptr;
    watch_->upstream = nullptr;
    watch_->queue_timer = nullptr;
    ++watch_->generation;
    if (req_id_) {
      context_.registry.forget_req_id(*req_id_);
      if (context_.active != nullptr) context_.active->remove(*req_id_);
    }
    error_code ignored;
    client_.socket().cancel(ignored);
    timer_.cancel();
    co_return result_;
  }

 private:
  enum class Attempt { done, try_next };

  struct Acquired {
    std::optional<std::size_t> child;
    bool answered = false;  // the client was answered (or left) while waiting
  };

  // A child for this request: at once, or after waiting in the queue.
  awaitable<Acquired> acquire(const std::vector<bool>& tried) {
    if (!takes_slot_) co_return Acquired{context_.dispatcher.pick_without_slot(tried)};
    const auto choice = context_.dispatcher.acquire(tried);
    if (choice.verdict == Dispatcher::Verdict::granted) co_return Acquired{choice.child};
    if (choice.verdict == Dispatcher::Verdict::none) co_return Acquired{};

    if (queue_deadline_ == Clock::time_point{}) queue_deadline_ = Clock::now() + to_duration(config_.queue_timeout);
    Waiter waiter;
    waiter.tried = &tried;
    waiter.wake = [watch = watch_] {
      if (watch->queue_timer != nullptr) watch->queue_timer->cancel();
    };
    if (!context_.dispatcher.enqueue(&waiter)) {
      co_await fail_before_commit(429, "Every child is busy and the wait queue is full; retry later.",
                                  "rate_limit_exceeded", "queue_full", retry_after());
      co_return Acquired{std::nullopt, true};
    }
    struct LeaveQueue {
      Dispatcher& dispatcher;
      Waiter& waiter;
      ~LeaveQueue() { dispatcher.remove(&waiter); }
    } leave_queue{context_.dispatcher, waiter};
    watch_->queue_timer = &timer_;
    // A streamed request that waits longer than --sse-heartbeat gets its SSE
    // head and heartbeats, so that nothing in between cuts the silent connection.
    const bool beat = heartbeats_apply();
    while (!waiter.granted && !waiter.refused && !watch_->client_gone && Clock::now() < queue_deadline_) {
      if (beat && Clock::now() >= heartbeat_due_) {
        co_await send_heartbeat();  // a failed write marks the client gone
        continue;
      }
      timer_.expires_at(beat ? std::min(queue_deadline_, heartbeat_due_) : queue_deadline_);
      error_code ec;
      co_await timer_.async_wait(use_awaitable_ec(ec));
    }
    watch_->queue_timer = nullptr;
    if (watch_->client_gone) {
      if (waiter.granted) context_.dispatcher.release(*waiter.granted, false);
      co_return Acquired{std::nullopt, true};
    }
    if (waiter.granted) co_return Acquired{waiter.granted};
    if (waiter.refused) co_return Acquired{};
    co_await fail_before_commit(503, "No child became free within the queue timeout; retry later.",
                                "service_unavailable", "queue_timeout", retry_after());
    co_return Acquired{std::nullopt, true};
  }

  static ExtraHeaders retry_after(long seconds = kRetryAfterSeconds) {
    return {{"Retry-After", std::to_string(seconds)}};
  }

  // Whole seconds until the first cooling child is back (at least 1).
  long seconds_until_first_cooldown_ends() const {
    const auto now = Clock::now();
    auto first = Clock::time_point::max();
    for (const Child& child : context_.registry.children()) {
      if (child.state == ChildState::cooling && child.cooling_until > now) first = std::min(first, child.cooling_until);
    }
    if (first == Clock::time_point::max()) return kRetryAfterSeconds;
    const double seconds = std::chrono::duration<double>(first - now).count();
    return std::max(1L, static_cast<long>(std::ceil(seconds)));
  }

  awaitable<void> dispatch() {
    std::vector<bool> tried(context_.registry.size(), false);
    std::string last_error;
    bool attempted = false;
    while (true) {
      const Acquired acquired = co_await acquire(tried);
      if (acquired.answered) co_return;
      if (!acquired.child) break;
      const std::size_t child = *acquired.child;
      if (child >= tried.size()) tried.resize(context_.registry.size(), false);  // a slot added by a reload
      tried[child] = true;
      if (!attempted) start_deadlines();  // time spent queued does not count against the child
      attempted = true;
      std::string error;
      rate_limited_ = false;
      quota_limited_ = false;
      const Attempt outcome = co_await attempt(child, error);
      if (takes_slot_) context_.dispatcher.release(child, outcome == Attempt::done && result_.status != 0);
      if (outcome == Attempt::done) co_return;
      const Child& failed = context_.registry.at(child);
      last_error = failed.name + ": " + error;
      if (context_.metrics) context_.metrics->count_retry();
      if (rate_limited_ || quota_limited_) {
        spdlog::warn("child {} is {} ({}); trying the next ready child", failed.name,
                     quota_limited_ ? "out of quota" : "rate limited", error);
        any_quota_ = any_quota_ || quota_limited_;
      } else {
        all_limited_ = false;
        spdlog::warn("child {} failed a forwarded request ({}); trying the next ready child", failed.name, error);
        context_.registry.report_forward_failure(child, error, Clock::now());
      }
      if (watch_->client_gone) co_return;
    }
    if (!attempted) {
      co_await fail_before_commit(503, "No healthy child proxies available.", "service_unavailable",
                                  "no_healthy_children");
    } else if (all_limited_ && any_quota_) {
      // The real child's 530: its account is spent; no other child could take the request.
      co_await fail_before_commit(429, "Every child that could take this request is out of quota; last: " + last_error,
                                  "rate_limit_exceeded", "quota_exhausted",
                                  retry_after(seconds_until_first_cooldown_ends()));
    } else if (all_limited_) {
      co_await fail_before_commit(429, "Every child is rate limited; last: " + last_error, "rate_limit_exceeded",
                                  "all_children_rate_limited", retry_after());
    } else {
      co_await fail_before_commit(502, "Every ready child failed this request; last: " + last_error, "upstream_error",
                                  "all_children_failed");
    }
  }

  // One child: connect (or reuse), send, read the head, relay. A pooled
  // connection that fails before any answer is retried once on a fresh one.
  awaitable<Attempt> attempt(std::size_t child, std::string& error) {
    current_child_ = child;
    struct Registered {
      ActiveRelays* active;
      std::size_t child;
      const void* key;
      ~Registered() {
        if (active != nullptr) active->remove_attempt(child, key);
      }
    } registered{context_.active, child, this};
    if (context_.active != nullptr) {
      context_.active->add_attempt(
          child, this, [weak = std::weak_ptr<WatchState>(watch_)] { interrupt_relay(weak, &WatchState::quota_retry); });
    }
    const std::string host = context_.registry.at(child).host;
    const int port = context_.registry.at(child).ports.api;
    upstream_request_.set(http::field::host, host + ":" + std::to_string(port));
    for (int connection_try = 0; connection_try < 2; ++connection_try) {
      std::optional<beast::tcp_stream> upstream = context_.pool.take(child);
      const bool pooled = upstream.has_value();
      error_code ec;
      if (!upstream) {
        auto fresh = co_await connect_to_child(host, port, to_duration(config_.connect_timeout), ec);
        if (!fresh) {
          if (context_.metrics) context_.metrics->count_connect_error(context_.registry.at(child).name);
          error = ec == beast::error::timeout ? std::string("connect timed out") : "connect: " + ec.message();
          co_return Attempt::try_next;
        }
        upstream.emplace(std::move(*fresh));
      }
      upstream->expires_after(to_duration(config_.connect_timeout + 25));
      co_await http::async_write(*upstream, upstream_request_, use_awaitable_ec(ec));
      upstream->expires_never();
      if (ec) {
        error = "send: " + ec.message();
        if (pooled) continue;
        co_return Attempt::try_next;
      }
      // The stall watchdog watches streams; a non-streamed answer may take the
      // child's own 420 s and is bounded by --request-timeout instead.
      stall_deadline_ = stream_mode_ ? Clock::now() + to_duration(config_.stall_timeout) : kNever;
      beast::flat_buffer buffer;
      buffer.reserve(kRelayBufferBytes);  // a typical answer's head and body in one read, not two
      http::response_parser<http::buffer_body> parser;
      parser.body_limit(std::numeric_limits<std::uint64_t>::max());
      parser.header_limit(64 * 1024);
      const ReadStatus status = co_await watched_read(
          *upstream,
          [&](error_code& read_ec) {
            return http::async_read_header(*upstream, buffer, parser, use_awaitable_ec(read_ec));
          },
          ec);
      if (status == ReadStatus::ok) {
        co_return co_await relay_response(child, *upstream, buffer, parser, error);
      }
      if (status == ReadStatus::quota_retry) {
        error = "its log shows its account out of quota";
        quota_limited_ = true;
        co_return Attempt::try_next;
      }
      if (status == ReadStatus::upstream_error) {
        error = "no answer: " + ec.message();
        if (pooled && buffer.size() == 0 && !delivered_) continue;
        if (!delivered_) co_return Attempt::try_next;
        co_await abort_stream("child " + context_.registry.at(child).name + " failed before answering");
        co_return Attempt::done;
      }
      co_await end_without_answer(child, status);
      co_return Attempt::done;
    }
    co_return Attempt::try_next;
  }

  // A quota signal (530, an in-stream quota or rotation error): the child's
  // account is spent for now, so it cools down for its Retry-After or --quota-cooldown.
  void cool_down_for_quota(std::size_t child, std::optional<double> retry_after, const std::string& why) {
    cool_down_for_quota_until(context_.registry, client_.get_executor(), child,
                              Clock::now() + to_duration(std::max(retry_after.value_or(config_.quota_cooldown), 0.001)),
                              why);
  }

  // Outlier detection: a run of server errors takes the child out of rotation.
  void note_answer(std::size_t child, unsigned status) {
    const OutlierPolicy policy{config_.eject_after, to_duration(config_.eject_time),
                               to_duration(config_.eject_time * 10)};
    const auto until = context_.registry.report_answer(child, status, policy, Clock::now());
    if (!until) return;
    net::co_spawn(client_.get_executor(), end_cooldown(&context_.registry, child, *until),
                  LogEscapedException{"ejection"});
  }

  using Parser = http::response_parser<http::buffer_body>;

  awaitable<Attempt> relay_response(std::size_t child, beast::tcp_stream& upstream, beast::flat_buffer& buffer,
                                    Parser& parser, std::string& error) {
    auto& response = parser.get();
    const unsigned status = response.result_int();
    const Child& chosen = context_.registry.at(child);
    result_.child = chosen.name;
    if (const StatusVerdict verdict = judge_status(status); verdict != StatusVerdict::relay && !delivered_) {
      // No work was done on that child: the next one gets the request. The
      // unread body goes with the connection, which is not pooled.
      error = "answered " + std::to_string(status);
      const auto retry_after = retry_after_seconds(response[http::field::retry_after]);
      if (verdict == StatusVerdict::rate_limited) {
        const auto now = Clock::now();
        const auto until = now + to_duration(std::max(retry_after.value_or(config_.cooldown), 0.001));
        if (context_.registry.report_rate_limited(child, until, now)) {
          net::co_spawn(client_.get_executor(), end_cooldown(&context_.registry, child, until),
                        LogEscapedException{"cooldown"});
        }
        rate_limited_ = true;
      } else if (verdict == StatusVerdict::quota) {
        cool_down_for_quota(child, retry_after, "out of quota (answered 530)");
        quota_limited_ = true;
      }
      co_return Attempt::try_next;
    }
    note_answer(child, status);
    if (status == 200 && is_event_stream(response[http::field::content_type])) {
      co_return co_await relay_events(child, upstream, buffer, parser, error);
    }
    if (status >= 400) co_return co_await relay_error(child, upstream, buffer, parser);
    if (committed_) {
      // Heartbeats already went out as an SSE stream: only an SSE answer fits it.
      co_await abort_stream("child " + chosen.name + " answered " + std::to_string(status) + " without a stream");
      co_return Attempt::done;
    }
    if (!co_await write_head(response)) co_return Attempt::done;
    co_await relay_body(child, upstream, buffer, parser);
    co_return Attempt::done;
  }

  using Chunk = std::array<char, kRelayBufferBytes>;

  // One piece of an answer's body from the child into `chunk`; `received`
  // is what arrived (possibly something even when the read ended badly).
  awaitable<ReadStatus> read_piece(beast::tcp_stream& upstream, beast::flat_buffer& buffer, Parser& parser,
                                   Chunk& chunk, std::string_view& received, error_code& ec) {
    auto& body = parser.get().body();
    body.data = chunk.data();
    body.size = chunk.size();
    const ReadStatus read = co_await watched_read(
        upstream,
        [&](error_code& read_ec) { return http::async_read_some(upstream, buffer, parser, use_awaitable_ec(read_ec)); },
        ec);
    received = std::string_view(chunk.data(), chunk.size() - body.size);
    co_return read;
  }

  // A child's error answer: read whole (it is small) so that FastAPI's
  // {"detail": ...} reaches the client in the one OpenAI error shape.
  awaitable<Attempt> relay_error(std::size_t child, beast::tcp_stream& upstream, beast::flat_buffer& buffer,
                                 Parser& parser) {
    delivered_ = true;  // the child's answer is final: no retry from here on
    auto& response = parser.get();
    const unsigned status = response.result_int();
    const Child& chosen = context_.registry.at(child);
    std::string body;
    Chunk chunk;
    ReadStatus read = ReadStatus::ok;
    error_code ec;
    while (!parser.is_done() && body.size() <= kMaxErrorBody) {
      std::string_view received;
      read = co_await read_piece(upstream, buffer, parser, chunk, received, ec);
      body.append(received);
      if (read != ReadStatus::ok) break;
    }
    if (read == ReadStatus::upstream_error) {
      const std::string why = "child " + chosen.name + " broke off its " + std::to_string(status) + " answer";
      spdlog::warn("{}: {}", why, ec.message());
      co_await fail_before_commit(502, why, std::string(kStreamAbortType), std::string(kStreamAbortCode));
      co_return Attempt::done;
    }
    if (read != ReadStatus::ok) {
      co_await end_without_answer(child, read);
      co_return Attempt::done;
    }
    if (!parser.is_done()) {
      // Too large to be an error message: relayed as it is.
      if (committed_) {
        co_await abort_stream("child " + chosen.name + " answered " + std::to_string(status));
      } else if (co_await write_head(response) && co_await write_body(net::buffer(body))) {
        co_await relay_body(child, upstream, buffer, parser);
      }
      co_return Attempt::done;
    }
    const ErrorKind kind = child_error_kind(status);
    if (const auto rewrapped = rewrap_child_error(status, body)) body = *rewrapped;
    if (committed_) {
      // The client already reads a stream (heartbeats): the error is its last event.
      const auto error = stream_error_of("data: " + body);
      co_await abort_stream(error ? error->message : "child " + chosen.name + " answered " + std::to_string(status),
                            kind.type, kind.code);
      co_return Attempt::done;
    }
    response.chunked(false);
    response.content_length(body.size());
    if (!co_await write_head(response) || !co_await write_body(net::buffer(body)) || !co_await finish_body()) {
      co_return Attempt::done;
    }
    result_.client_reusable = client_keep_alive_;
    if (parser.keep_alive()) context_.pool.give_back(child, std::move(upstream));
    co_return Attempt::done;
  }

  // A non-stream answer's body, relayed a read at a time.
  awaitable<void> relay_body(std::size_t child, beast::tcp_stream& upstream, beast::flat_buffer& buffer,
                             Parser& parser) {
    delivered_ = true;  // an answer is on its way to the client: no retry from here on
    // Not value-initialised: zero-filling 16 KiB per answer showed up in profiles.
    // (Reusing these buffers across requests was tried: no measurable gain.)
    Chunk chunk;
    while (!parser.is_done()) {
      error_code ec;
      std::string_view received;
      const ReadStatus read = co_await read_piece(upstream, buffer, parser, chunk, received, ec);
      if (!received.empty()) {
        note_upstream_bytes(received);
        if (!co_await write_body(net::buffer(received))) co_return;
      }
      if (read == ReadStatus::ok) continue;
      co_await end_broken_answer(child, read, ec);
      co_return;
    }
    if (co_await finish_body()) {
      result_.client_reusable = client_keep_alive_;
      if (parser.keep_alive()) context_.pool.give_back(child, std::move(upstream));
    }
  }

  // A child's 200 event stream, relayed an event at a time. Nothing has been
  // delivered until its first event with work in it (is_substantive_event):
  // comments and the child's empty chunks before it are held back, and an
  // error in that time sends the request to another child. [DONE] is held
  // until the stream ends, because the real child sends its quota error after
  // it. Later error events reach the client in the OpenAI shape, then [DONE].
  awaitable<Attempt> relay_events(std::size_t child, beast::tcp_stream& upstream, beast::flat_buffer& buffer,
                                  Parser& parser, std::string& error) {
    auto& response = parser.get();
    stream_mode_ = true;
    total_deadline_ = kNever;
    const auto now = Clock::now();
    idle_deadline_ = now + to_duration(config_.stream_idle_timeout);
    stall_deadline_ = now + to_duration(config_.stall_timeout);
    StreamGate gate;
    Chunk chunk;
    while (!parser.is_done()) {
      error_code ec;
      std::string_view received;
      const ReadStatus read = co_await read_piece(upstream, buffer, parser, chunk, received, ec);
      if (!received.empty()) {
        note_upstream_bytes(received);
        const std::optional<StreamError> failure = gate.take(received);
        if (failure && !gate.started) {
          error = "its stream failed before any work was delivered: " + failure->message;
          if (failure->quota) {
            cool_down_for_quota(child, std::nullopt, "out of quota: " + failure->message);
            quota_limited_ = true;
          }
          co_return Attempt::try_next;
        }
        if (gate.started && !committed_ && !co_await write_head(response)) co_return Attempt::done;
        if (failure) {
          co_await end_with_error_event(child, std::move(gate.out), *failure);
          co_return Attempt::done;
        }
        if (!gate.out.empty()) {
          delivered_ = true;
          if (!co_await write_body(net::buffer(gate.out))) co_return Attempt::done;
        }
      }
      if (read == ReadStatus::ok) continue;
      if (!gate.started && read == ReadStatus::upstream_error) {
        error = "its stream broke off before any work was delivered: " + ec.message();
        co_return Attempt::try_next;
      }
      if (read == ReadStatus::quota_retry) {
        error = "its log shows its account out of quota";
        quota_limited_ = true;
        co_return Attempt::try_next;
      }
      if (!committed_ && read != ReadStatus::client_gone && !co_await write_head(response)) {
        co_return Attempt::done;
      }
      co_await end_broken_answer(child, read, ec);
      co_return Attempt::done;
    }
    std::string rest = gate.finish();
    if (!gate.started && rest.empty()) {
      error = "its stream ended before its first event";
      co_return Attempt::try_next;
    }
    if (!committed_ && !co_await write_head(response)) co_return Attempt::done;
    if (!rest.empty() && !co_await write_body(net::buffer(rest))) co_return Attempt::done;
    if (co_await finish_body()) {
      result_.client_reusable = client_keep_alive_;
      if (parser.keep_alive()) context_.pool.give_back(child, std::move(upstream));
    }
    co_return Attempt::done;
  }

  // An error event in a stream that has started: the events before it, the
  // error in the OpenAI shape, then [DONE]; the connection is not reused.
  awaitable<void> end_with_error_event(std::size_t child, std::string before, const StreamError& failure) {
    const Child& chosen = context_.registry.at(child);
    spdlog::warn("child {} sent an error event mid-stream: {}", chosen.name, failure.message);
    if (failure.quota) cool_down_for_quota(child, std::nullopt, "out of quota: " + failure.message);
    const std::string_view code = failure.quota ? "quota_exhausted" : "child_stream_error";
    before += stream_abort_events(failure.message, kStreamAbortType, code);
    client_keep_alive_ = false;
    if (co_await write_body(net::buffer(before))) co_await finish_body();
    result_.client_reusable = false;
  }

  // An answer that started and then did not finish: the client gets what
  // fits the reason, the child's work is cancelled where that helps.
  awaitable<void> end_broken_answer(std::size_t child, ReadStatus read, const error_code& ec) {
    const Child& chosen = context_.registry.at(child);
    switch (read) {
      case ReadStatus::ok:
        co_return;
      case ReadStatus::client_gone:
        client_left(child);
        co_return;
      case ReadStatus::cancelled:
        co_await end_cancelled();
        co_return;
      case ReadStatus::stalled:
        co_await stalled(child);
        co_return;
      case ReadStatus::quota_retry:  // only while nothing was delivered; handled where that can be
      case ReadStatus::upstream_error:
      case ReadStatus::idle_timeout:
      case ReadStatus::total_timeout:
        break;
    }
    const std::string why = read == ReadStatus::upstream_error ? "child " + chosen.name + " broke off: " + ec.message()
                            : read == ReadStatus::idle_timeout
                                ? "child " + chosen.name + " was silent for " +
                                      std::to_string(static_cast<int>(config_.stream_idle_timeout)) + " s"
                                : "child " + chosen.name + " exceeded the request timeout";
    spdlog::warn("{}", why);
    if (read == ReadStatus::upstream_error) context_.registry.report_forward_failure(child, why, Clock::now());
    if (req_id_) co_spawn_cancel(child);
    co_await abort_stream(why);
  }

  // POST /v1/cancel/{req_id} ended this relay; closing the upstream stopped the child's page.
  awaitable<void> end_cancelled() {
    const std::string why = "Request " + req_id_.value_or("") + " was cancelled (POST /v1/cancel).";
    spdlog::info("relay of {} cancelled", req_id_.value_or("?"));
    if (committed_) {
      co_await abort_stream(why, "invalid_request_error", "request_cancelled");
    } else {
      co_await fail_before_commit(499, why, "invalid_request_error", "request_cancelled");
    }
  }

  // A read from the child that wakes for heartbeats and deadlines, and ends
  // at once when the client goes away.
  template <class StartRead>
  awaitable<ReadStatus> watched_read(beast::tcp_stream& upstream, StartRead start_read, error_code& ec) {
    while (true) {
      const auto now = Clock::now();
      if (now >= total_deadline_) co_return ReadStatus::total_timeout;
      if (now >= idle_deadline_) co_return ReadStatus::idle_timeout;
      if (now >= stall_deadline_) co_return ReadStatus::stalled;
      if (watch_->cancelled) co_return ReadStatus::cancelled;
      if (watch_->client_gone) co_return ReadStatus::client_gone;
      if (std::exchange(watch_->quota_retry, false) && !delivered_) co_return ReadStatus::quota_retry;
      auto wake = std::min({total_deadline_, idle_deadline_, stall_deadline_});
      if (heartbeats_apply()) wake = std::min(wake, heartbeat_due_);

      watch_->upstream = &upstream;
      watch_->tick = false;
      const unsigned generation = ++watch_->generation;
      if (wake != kNever) {
        timer_.expires_at(wake);
        timer_.async_wait([watch = watch_, generation](error_code timer_ec) {
          if (timer_ec || watch->generation != generation || watch->upstream == nullptr) return;
          watch->tick = true;
          error_code ignored;
          watch->upstream->socket().cancel(ignored);
        });
      }
      ec = {};
      co_await start_read(ec);
      ++watch_->generation;
      watch_->upstream = nullptr;
      timer_.cancel();

      if (watch_->cancelled) co_return ReadStatus::cancelled;
      if (watch_->client_gone) co_return ReadStatus::client_gone;
      if (ec == net::error::operation_aborted && watch_->quota_retry) continue;  // decided at the top
      if (ec == http::error::need_buffer) ec = {};
      if (ec == net::error::operation_aborted && watch_->tick) {
        if (heartbeats_apply() && Clock::now() >= heartbeat_due_ && !co_await send_heartbeat()) {
          co_return ReadStatus::client_gone;
        }
        continue;
      }
      co_return ec ? ReadStatus::upstream_error : ReadStatus::ok;
    }
  }

  Clock::duration heartbeat_period() const {
    return config_.sse_heartbeat > 0 ? to_duration(config_.sse_heartbeat) : Clock::duration::max() / 2;
  }
  bool heartbeats_apply() const { return config_.sse_heartbeat > 0 && (stream_requested_ || sse_to_client_); }

  // Any byte from the child shows it alive (a stream's comments too); only
  // what reaches the client puts off the next heartbeat (see write_body).
  void note_upstream_bytes(std::string_view bytes) {
    const auto now = Clock::now();
    if (stream_mode_) {
      stall_deadline_ = now + to_duration(config_.stall_timeout);
      idle_deadline_ = now + to_duration(config_.stream_idle_timeout);
    }
    if (!req_id_ && stream_mode_ && scanned_.size() < kReqIdScanBytes) {
      scanned_.append(bytes.substr(0, kReqIdScanBytes - scanned_.size()));
      req_id_ = extract_req_id(scanned_);
      if (req_id_) {
        scanned_.clear();
        if (current_child_) context_.registry.remember_req_id(*req_id_, *current_child_);
        if (context_.active != nullptr) {
          context_.active->add(
              *req_id_, [weak = std::weak_ptr<WatchState>(watch_)] { interrupt_relay(weak, &WatchState::cancelled); });
        }
      }
    }
  }

  // No byte from the child for --stall-timeout: its page is stuck. Answer the
  // client, cancel the work, and have the child recycled.
  awaitable<void> stalled(std::size_t child) {
    const Child& chosen = context_.registry.at(child);
    const std::string why =
        fmt::format("child {} sent nothing for {:.1f} s (stalled)", chosen.name, config_.stall_timeout);
    spdlog::warn("{}; recycling it", why);
    if (committed_) {
      co_await abort_stream(why);
    } else {
      co_await fail_before_commit(504, why, "timeout", "upstream_stalled");
    }
    // The cancel must reach the child before it is stopped.
    if (context_.metrics && req_id_) context_.metrics->count_cancel();
    net::co_spawn(client_.get_executor(),
                  cancel_then_recycle(chosen.name, chosen.host, chosen.ports.api, req_id_.value_or(""),
                                      to_duration(config_.cancel_timeout), credentials_of(request_), context_.recycle,
                                      child, why),
                  LogEscapedException{"stall recycle"});
  }

  awaitable<bool> send_heartbeat() {
    heartbeat_due_ = Clock::now() + heartbeat_period();
    if (!committed_) {
      // The child has not answered yet: commit to an SSE answer so the
      // client (and any load balancer in between) sees the connection alive.
      http::response<http::empty_body> head{http::status::ok, request_.version()};
      head.set(http::field::content_type, "text/event-stream");
      head.set(http::field::cache_control, "no-cache");
      if (!co_await write_head(head)) co_return false;
    }
    co_return co_await write_body(net::buffer(kHeartbeat.data(), kHeartbeat.size()));
  }

  template <class Header>
  awaitable<bool> write_head(const Header& upstream_head) {
    // By number: a status Beast has no name for (418, 520 ...) must pass unchanged.
    http::response<http::empty_body> head;
    head.result(upstream_head.result_int());
    head.version(request_.version());
    const std::string_view connection = upstream_head[http::field::connection];
    for (const auto& field : upstream_head) {
      const std::string_view name = field.name_string();
      if (is_hop_by_hop(name) || iequals(name, "content-length") || connection_lists(connection, name)) continue;
      head.insert(name, field.value());
    }
    head.set(http::field::server, "coordinator");
    if (const std::string_view id = request_["X-Request-Id"]; !id.empty()) head.set("X-Request-Id", id);
    const auto length = content_length_of(upstream_head);
    if (length) {
      head.content_length(*length);
      framing_ = Framing::length;
    } else if (client_chunked_ok_) {
      head.chunked(true);
      framing_ = Framing::chunked;
    } else {
      framing_ = Framing::close;
      client_keep_alive_ = false;
    }
    head.keep_alive(client_keep_alive_);
    sse_to_client_ = is_event_stream(head[http::field::content_type]);
    if (sse_to_client_) head.set(http::field::cache_control, "no-cache");
    result_.status = head.result_int();
    committed_ = true;
    if (stream_mode_) result_.stream_ttfb = std::chrono::duration<double>(Clock::now() - started_).count();
    if (!sse_to_client_ && !stream_mode_) {
      // Not a stream: the head waits for the first body bytes and goes out in
      // the same write (one segment, one wake-up of the client, not two).
      std::ostringstream serialized;
      serialized << head.base();
      pending_head_ = std::move(serialized).str();
      co_return true;
    }
    http::response_serializer<http::empty_body> serializer{head};
    error_code ec;
    client_.expires_after(to_duration(config_.client_send_timeout));
    co_await http::async_write_header(client_, serializer, use_awaitable_ec(ec));
    if (ec) return_client_gone();
    co_return !ec;
  }

  static std::optional<std::uint64_t> content_length_of(const http::response<http::empty_body>&) {
    return std::nullopt;  // our own heartbeat head: unknown length
  }
  static std::optional<std::uint64_t> content_length_of(const http::response<http::buffer_body>& head) {
    if (head.chunked()) return std::nullopt;
    const auto status = head.result_int();
    if (status == 204 || status == 304 || (status >= 100 && status < 200)) return 0;
    const std::string_view value = head[http::field::content_length];
    if (value.empty()) return std::nullopt;
    std::uint64_t length = 0;
    for (char c : value) {
      if (c < '0' || c > '9') return std::nullopt;
      length = length * 10 + static_cast<std::uint64_t>(c - '0');
    }
    return length;
  }

  awaitable<bool> write_body(net::const_buffer data) {
    if (data.size() == 0) co_return true;
    error_code ec;
    client_.expires_after(to_duration(config_.client_send_timeout));
    const net::const_buffer head = net::buffer(pending_head_);
    if (framing_ == Framing::chunked) {
      co_await net::async_write(client_, beast::buffers_cat(head, http::make_chunk(data)), use_awaitable_ec(ec));
    } else {
      co_await net::async_write(client_, beast::buffers_cat(head, data), use_awaitable_ec(ec));
    }
    pending_head_.clear();
    if (ec) {
      return_client_gone();
      co_return false;
    }
    heartbeat_due_ = Clock::now() + heartbeat_period();
    result_.bytes_sent += data.size();
    co_return true;
  }

  awaitable<bool> finish_body() {
    error_code ec;
    client_.expires_after(to_duration(config_.client_send_timeout));
    if (!pending_head_.empty()) {
      // An empty body: the head goes out now, with the last chunk if chunked.
      if (framing_ == Framing::chunked) {
        co_await net::async_write(client_, beast::buffers_cat(net::buffer(pending_head_), http::make_chunk_last()),
                                  use_awaitable_ec(ec));
      } else {
        co_await net::async_write(client_, net::buffer(pending_head_), use_awaitable_ec(ec));
      }
      pending_head_.clear();
      if (ec) return_client_gone();
      co_return !ec;
    }
    if (framing_ != Framing::chunked) co_return true;
    co_await net::async_write(client_, http::make_chunk_last(), use_awaitable_ec(ec));
    if (ec) return_client_gone();
    co_return !ec;
  }

  void return_client_gone() {
    watch_->client_gone = true;
    client_keep_alive_ = false;
    result_.client_reusable = false;
  }

  // The client left: release the child at once and cancel its work.
  void client_left(std::size_t child) {
    spdlog::info("client left a request to child {}; closing the upstream{}", context_.registry.at(child).name,
                 req_id_ ? " and cancelling " + *req_id_ : std::string{});
    if (req_id_) co_spawn_cancel(child);
  }

  void co_spawn_cancel(std::size_t child) {
    const Child& target = context_.registry.at(child);
    if (context_.metrics) context_.metrics->count_cancel();
    net::co_spawn(client_.get_executor(),
                  cancel_in_background(target.name, target.host, target.ports.api, *req_id_,
                                       to_duration(config_.cancel_timeout), credentials_of(request_)),
                  LogEscapedException{"cancel"});
  }

  // Ends an answer that has already started: as an SSE error event when the
  // client is reading a stream, else by closing the connection.
  awaitable<void> abort_stream(const std::string& why, std::string_view type = kStreamAbortType,
                               std::string_view code = kStreamAbortCode) {
    // The streaming issue asks for the error event, [DONE], then a close: the
    // answer cannot be trusted, so neither is the connection it came on.
    client_keep_alive_ = false;
    if (sse_to_client_ && framing_ != Framing::length) {
      const std::string events = stream_abort_events(why, type, code);
      if (co_await write_body(net::buffer(events))) co_await finish_body();
    }
    result_.client_reusable = false;
  }

  awaitable<void> end_without_answer(std::size_t child, ReadStatus status) {
    const Child& chosen = context_.registry.at(child);
    result_.child = chosen.name;
    if (status == ReadStatus::client_gone) {
      client_left(child);
      co_return;
    }
    if (status == ReadStatus::stalled) {
      co_await stalled(child);
      co_return;
    }
    if (status == ReadStatus::cancelled) {
      co_await end_cancelled();
      co_return;
    }
    const std::string why =
        "child " + chosen.name + " did not answer within " +
        std::to_string(static_cast<int>(status == ReadStatus::idle_timeout ? config_.stream_idle_timeout
                                                                           : config_.request_timeout)) +
        " s";
    spdlog::warn("{}", why);
    if (committed_) {
      co_await abort_stream(why);
    } else {
      co_await fail_before_commit(504, why, "timeout", "upstream_timeout");
    }
  }

  awaitable<void> fail_before_commit(unsigned status, std::string message, std::string type, std::string code,
                                     ExtraHeaders extra = {}) {
    if (watch_->client_gone) co_return;
    if (committed_) {
      // Heartbeats sent while it waited already committed a 200 SSE answer.
      co_await abort_stream(message, type, code);
      co_return;
    }
    result_.status = status;
    if (const std::string_view id = request_["X-Request-Id"]; !id.empty()) extra.emplace_back("X-Request-Id", id);
    const bool sent = co_await send_error(client_, request_.version(), status, message, type, code, client_keep_alive_,
                                          to_duration(config_.client_send_timeout), extra);
    if (!sent) return_client_gone();
    result_.client_reusable = sent && client_keep_alive_;
  }

  void build_upstream_request() {
    upstream_request_ = http::request<http::string_body>{request_.method(), request_.target(), 11};
    const std::string_view connection = request_[http::field::connection];
    for (const auto& field : request_) {
      const std::string_view name = field.name_string();
      if (is_hop_by_hop(name) || iequals(name, "host") || iequals(name, "content-length") || iequals(name, "expect") ||
          connection_lists(connection, name)) {
        continue;
      }
      upstream_request_.insert(name, field.value());
    }
    if (!client_address_.empty()) {
      const std::string_view earlier = request_["X-Forwarded-For"];
      upstream_request_.set("X-Forwarded-For",
                            earlier.empty() ? client_address_ : std::string(earlier) + ", " + client_address_);
    }
    upstream_request_.body() = request_.body();
    upstream_request_.keep_alive(true);
    upstream_request_.prepare_payload();
  }

  enum class Framing { length, chunked, close };

  ForwardContext& context_;
  const Config& config_;
  beast::tcp_stream& client_;
  const http::request<http::string_body>& request_;
  http::request<http::string_body> upstream_request_;
  bool stream_mode_;
  const bool stream_requested_;
  const bool takes_slot_;
  const std::string client_address_;
  bool rate_limited_ = false;   // the last attempt's child answered 429
  bool quota_limited_ = false;  // the last attempt's child is out of quota
  bool all_limited_ = true;     // every attempt so far ended in one of those two
  bool any_quota_ = false;
  bool delivered_ = false;  // bytes of a child's answer reached the client: no more retries
  std::optional<std::size_t> current_child_;
  Clock::time_point stall_deadline_ = kNever;
  Clock::time_point queue_deadline_{};
  bool client_keep_alive_;
  const bool client_chunked_ok_;
  bool committed_ = false;    // the client has been sent (or will be sent) a status line
  std::string pending_head_;  // a non-stream answer's head, sent with its first body bytes
  bool sse_to_client_ = false;
  Framing framing_ = Framing::length;
  Clock::time_point total_deadline_{};
  Clock::time_point idle_deadline_{};
  Clock::time_point heartbeat_due_{};
  std::optional<std::string> req_id_;
  std::string scanned_;
  net::steady_timer timer_;
  std::shared_ptr<WatchState> watch_;
  ForwardResult result_;
  const Clock::time_point started_ = Clock::now();
};

}  // namespace

void report_quota_from_child_log(ForwardContext& context, net::any_io_executor executor, std::size_t child,
                                 const std::string& why) {
  cool_down_for_quota_until(context.registry, executor, child,
                            Clock::now() + to_duration(context.config.quota_cooldown), why);
  if (context.active != nullptr) context.active->retry_elsewhere(child);
}

awaitable<unsigned> cancel_on_child(std::string child, std::string host, int port, std::string req_id,
                                    Clock::duration timeout, ExtraHeaders auth) {
  std::string error;
  auto response = co_await simple_request(host, port, http::verb::post, "/v1/cancel/" + req_id, "", timeout, error,
                                          std::move(auth));
  if (response) {
    spdlog::info("cancel {} on child {}: {}", req_id, child, response->status);
    co_return response->status;
  }
  spdlog::warn("cancel {} on child {} failed: {}", req_id, child, error);
  co_return 0;
}

ExtraHeaders credentials_of(const http::request<http::string_body>& request) {
  ExtraHeaders auth;
  for (const std::string_view name : {"Authorization", "X-API-Key"}) {
    if (const std::string_view value = request[name]; !value.empty()) auth.emplace_back(name, value);
  }
  return auth;
}

awaitable<ForwardResult> forward_request(ForwardContext& context, beast::tcp_stream& client,
                                         const http::request<http::string_body>& request, bool stream_requested,
                                         bool takes_slot, bool client_keep_alive, std::string client_address) {
  Relay relay(context, client, request, stream_requested, takes_slot, client_keep_alive, std::move(client_address));
  ForwardResult result = co_await relay.run();
  co_return result;
}

}  // namespace coordinator
