#include "coordinator/attempt.hpp"

#include <spdlog/spdlog.h>

#include <array>
#include <limits>

#include "coordinator/child_answers.hpp"
#include "coordinator/errors.hpp"
#include "coordinator/exchange_buffers.hpp"
#include "coordinator/field_lookup.hpp"
#include "coordinator/http_util.hpp"

namespace coordinator {

namespace {

// A child's error answer is read whole to be put in the OpenAI shape; one
// larger than this is relayed as it is.
constexpr std::size_t kMaxErrorBody = std::size_t{64} * 1024;
// Sending a small request to a local child never takes long; the connect
// timeout bounds the handshake, this the write.
constexpr auto kSendSlack = std::chrono::seconds(25);

// The length of a child's body as the client will be told it, when known.
std::optional<std::uint64_t> body_length(const http::response_parser<http::buffer_body>& parser) {
  const unsigned status = parser.get().result_int();
  if (status == 204 || status == 304 || (status >= 100 && status < 200)) return 0;
  if (parser.chunked()) return std::nullopt;
  if (const auto length = parser.content_length()) return *length;
  return std::nullopt;
}

}  // namespace

struct ChildAttempt::Exchange {
  explicit Exchange(ChildConnection& stream) : connection(stream), upstream(*stream), buffers(take_exchange_buffers()) {
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());
    parser.header_limit(64 * 1024);
  }
  ChildConnection& connection;  // given back to the pool after a complete answer
  TcpStream& upstream;
  PooledExchangeBuffers buffers;  // the read buffer and the body's chunk, kept for the next answer
  Parser parser;
};

ChildAttempt::ChildAttempt(std::size_t index, const Child& child, UpstreamPool& pool, ChildRequest& request,
                           ClientResponse& client, RelayDeadlines& deadlines, std::shared_ptr<RelaySignals> signals,
                           SteadyTimer& timer, AnswerWatch& answer_watch, const AttemptSettings& settings)
    : index_(index),
      child_(child),
      pool_(pool),
      request_(request),
      client_(client),
      deadlines_(deadlines),
      signals_(std::move(signals)),
      timer_(timer),
      answer_watch_(answer_watch),
      settings_(settings) {}

awaitable<AttemptOutcome> ChildAttempt::run() {
  request_.address_to(child_.host, child_.ports.api);
  AttemptOutcome refused;
  refused.end = AttemptEnd::refused;
  for (int connection_try = 0; connection_try < 2; ++connection_try) {
    // The retry after a pooled connection failed goes to a fresh one.
    ChildConnection upstream = connection_try == 0 ? pool_.take(index_) : nullptr;
    const bool pooled = upstream != nullptr;
    error_code ec;
    if (!upstream) {
      upstream = co_await connect_to_child(child_.host, child_.ports.api, settings_.connect_timeout, ec);
      if (!upstream) {
        refused.connect_failed = true;
        refused.error = ec == beast::error::timeout ? std::string("connect timed out") : "connect: " + ec.message();
        co_return refused;
      }
    }
    upstream->expires_after(settings_.connect_timeout + kSendSlack);
    co_await net::async_write(*upstream, request_.buffers(), use_awaitable_ec(ec));
    upstream->expires_never();
    if (ec) {
      refused.error = "send: " + ec.message();
      if (pooled) {
        pool_.drop(index_);  // the child closed it: its other idle ones are likely closed too
        continue;
      }
      co_return refused;
    }
    deadlines_.sent_to_child(Clock::now());
    Exchange exchange(upstream);
    const Read read = co_await watched_read(
        *upstream,
        [&](error_code& read_ec) {
          return http::async_read_header(*upstream, exchange.buffers->buffer, exchange.parser,
                                         use_awaitable_ec(read_ec));
        },
        ec);
    if (read == Read::ok) {
      const unsigned status = exchange.parser.get().result_int();
      AttemptOutcome outcome = co_await answer(exchange);
      outcome.status = status;
      // Every relayed status counts for outlier detection, whatever happens to its body.
      outcome.relayed = judge_status(status) == StatusVerdict::relay;
      co_return outcome;
    }
    if (read == Read::upstream_error) {
      refused.error = "no answer: " + ec.message();
      if (pooled && exchange.buffers->buffer.size() == 0) {
        pool_.drop(index_);
        continue;
      }
      co_return refused;
    }
    co_return ended_by(read, ec, false);
  }
  co_return refused;
}

AttemptOutcome ChildAttempt::ended_by(Read read, const error_code& ec, bool mid_answer) const {
  AttemptOutcome outcome;
  outcome.mid_answer = mid_answer;
  switch (read) {
    case Read::ok:
      break;
    case Read::quota_retry:
      outcome.end = AttemptEnd::refused;
      outcome.quota = true;
      outcome.error = "its log shows its account out of quota";
      break;
    case Read::upstream_error:
      outcome.end = AttemptEnd::broke_off;
      outcome.error = ec.message();
      break;
    case Read::client_gone:
      outcome.end = AttemptEnd::client_gone;
      break;
    case Read::cancelled:
      outcome.end = AttemptEnd::cancelled;
      break;
    case Read::stalled:
      outcome.end = AttemptEnd::stalled;
      break;
    case Read::total_timeout:
    case Read::idle_timeout:
      outcome.end = AttemptEnd::timed_out;
      outcome.expiry = read == Read::idle_timeout ? Expiry::idle : Expiry::total;
      break;
  }
  return outcome;
}

// The child's head is in: fail over on what says no work was done, else
// relay. Not a coroutine: it picks the step that reads the body (a frame less
// per request); run() sets the outcome's status.
awaitable<AttemptOutcome> ChildAttempt::answer(Exchange& exchange) {
  const auto& head = exchange.parser.get();
  const unsigned status = head.result_int();
  if (const StatusVerdict verdict = judge_status(status); verdict != StatusVerdict::relay) {
    // No work was done on that child: the next one gets the request. The
    // unread body goes with the connection, which is not pooled.
    AttemptOutcome outcome;
    outcome.end = AttemptEnd::refused;
    outcome.error = "answered " + std::to_string(status);
    outcome.retry_after = retry_after_seconds(field_value(head, http::field::retry_after));
    outcome.rate_limited = verdict == StatusVerdict::rate_limited;
    outcome.quota = verdict == StatusVerdict::quota;
    if (outcome.quota) outcome.quota_reason = "out of quota (answered " + std::to_string(status) + ")";
    return ready(std::move(outcome));
  }
  if (status == 200 && is_event_stream(field_value(head, http::field::content_type))) return relay_events(exchange);
  if (status >= 400) return relay_error(exchange);
  // Heartbeats already went out as an SSE stream: only an SSE answer fits it.
  if (client_.committed()) return abort_unstreamed(status);
  if (client_.begin(head, body_length(exchange.parser), deadlines_.stream())) return send_head_then_body(exchange);
  return relay_body(exchange);
}

awaitable<AttemptOutcome> ChildAttempt::ready(AttemptOutcome outcome) {
  co_return outcome;
}

awaitable<AttemptOutcome> ChildAttempt::abort_unstreamed(unsigned status) {
  co_await client_.abort(errc::child_stream_aborted,
                         "child " + child_.name + " answered " + std::to_string(status) + " without a stream");
  co_return AttemptOutcome{};
}

awaitable<AttemptOutcome> ChildAttempt::send_head_then_body(Exchange& exchange) {
  const bool started = co_await client_.send_head();
  if (!started) {
    co_return AttemptOutcome{};
  }
  co_return co_await relay_body(exchange);
}

// A piece of the body from what is buffered: true when that gave one (or an
// error, then `read` says so); false when the socket must be read.
bool ChildAttempt::piece_buffered(Exchange& exchange, Read& read, error_code& ec) {
  auto& body = exchange.parser.get().body();
  body.data = exchange.buffers->chunk.data();
  body.size = exchange.buffers->chunk.size();
  if (!take_buffered(exchange, ec)) return false;
  read = ec ? Read::upstream_error : Read::ok;
  return true;
}

awaitable<ChildAttempt::Read> ChildAttempt::read_from_child(Exchange& exchange, error_code& ec) {
  return watched_read(
      exchange.upstream,
      [&exchange](error_code& read_ec) {
        return http::async_read_some(exchange.upstream, exchange.buffers->buffer, exchange.parser,
                                     use_awaitable_ec(read_ec));
      },
      ec);
}

std::string_view ChildAttempt::piece_of(Exchange& exchange) {
  return {exchange.buffers->chunk.data(), exchange.buffers->chunk.size() - exchange.parser.get().body().size};
}

// Most answers' bodies come with their head: what is buffered is parsed here,
// where Beast's read would post its completion through the scheduler. False
// when nothing came of it and the socket must be read.
bool ChildAttempt::take_buffered(Exchange& exchange, error_code& ec) {
  auto& parser = exchange.parser;
  const std::size_t room = parser.get().body().size;
  // Not eager: a parser that parsed on past the body bytes would make the
  // next read wait for the child's next chunk before handing these on.
  while (exchange.buffers->buffer.size() > 0 && !parser.is_done() && parser.get().body().size == room) {
    const std::size_t used = parser.put(exchange.buffers->buffer.data(), ec);
    exchange.buffers->buffer.consume(used);
    // need_buffer: the chunk is full; need_more: the rest is still on its way.
    if (ec == http::error::need_buffer || ec == http::error::need_more) {
      ec = {};
      break;
    }
    if (ec) return true;  // a malformed answer, reported as the read's error
    if (used == 0) break;
  }
  return parser.is_done() || parser.get().body().size < room;
}

// The last bytes of an answer and its end; the child's connection then
// carries the next request.
awaitable<void> ChildAttempt::send_last(Exchange& exchange, std::string_view bytes) {
  if (!bytes.empty()) {
    const bool sent = co_await client_.send(bytes);
    if (!sent) {
      co_return;
    }
  }
  if (finished_at_once(exchange)) co_return;
  const bool finished = co_await client_.finish();
  if (finished) give_back(exchange);
}

// The answer's end when nothing is left to write (the common case: the last
// body bytes went out with the head); false when the end must be written.
bool ChildAttempt::finished_at_once(Exchange& exchange) {
  if (!client_.finish_at_once()) return false;
  give_back(exchange);
  return true;
}

void ChildAttempt::give_back(Exchange& exchange) {
  if (exchange.parser.keep_alive()) pool_.give_back(index_, std::move(exchange.connection));
}

// A child's error answer: read whole (it is small) so that FastAPI's
// {"detail": ...} reaches the client in the one OpenAI error shape.
awaitable<AttemptOutcome> ChildAttempt::relay_error(Exchange& exchange) {
  delivered_ = true;  // the child's answer is final: no retry from here on
  auto& head = exchange.parser.get();
  const unsigned status = head.result_int();
  AttemptOutcome outcome;
  std::string body;
  Read read = Read::ok;
  error_code ec;
  while (!exchange.parser.is_done() && body.size() <= kMaxErrorBody) {
    if (!piece_buffered(exchange, read, ec)) read = co_await read_from_child(exchange, ec);
    body.append(piece_of(exchange));
    if (read != Read::ok) break;
  }
  if (read == Read::upstream_error) {
    const std::string why = "child " + child_.name + " broke off its " + std::to_string(status) + " answer";
    spdlog::warn("{}: {}", why, ec.message());
    co_await client_.fail(errc::child_stream_aborted, why);
    co_return outcome;
  }
  if (read != Read::ok) {
    co_return ended_by(read, ec, false);
  }
  if (!exchange.parser.is_done()) {
    // Too large to be an error message: relayed as it is.
    if (client_.committed()) {
      co_await client_.abort(errc::child_stream_aborted,
                             "child " + child_.name + " answered " + std::to_string(status));
      co_return outcome;
    }
    const bool started = co_await client_.start(head, body_length(exchange.parser), false);
    if (!started) {
      co_return outcome;
    }
    const bool sent = co_await client_.send(body);
    if (!sent) {
      co_return outcome;
    }
    co_return co_await relay_body(exchange);
  }
  const ErrorKind kind = child_error_kind(status);
  if (const auto rewrapped = rewrap_child_error(status, body)) body = *rewrapped;
  if (client_.committed()) {
    // The client already reads a stream (heartbeats): the error is its last event.
    const auto error = stream_error_of("data: " + body);
    std::string message = "child " + child_.name + " answered " + std::to_string(status);
    if (error) message = error->message;
    co_await client_.abort(std::move(message), kind.type, kind.code);
    co_return outcome;
  }
  head.chunked(false);
  head.content_length(body.size());
  const bool started = co_await client_.start(head, body.size(), false);
  if (!started) {
    co_return outcome;
  }
  co_await send_last(exchange, body);
  co_return outcome;
}

// A non-stream answer's body, relayed a read at a time.
awaitable<AttemptOutcome> ChildAttempt::relay_body(Exchange& exchange) {
  delivered_ = true;  // an answer is on its way to the client: no retry from here on
  while (!exchange.parser.is_done()) {
    error_code ec;
    Read read = Read::ok;
    if (!piece_buffered(exchange, read, ec)) read = co_await read_from_child(exchange, ec);
    const std::string_view received = piece_of(exchange);
    if (!received.empty()) {
      child_sent(received);
      const bool sent = co_await client_.send(received);
      if (!sent) {
        co_return ended_by(Read::client_gone, ec, true);
      }
    }
    if (read != Read::ok) co_return ended_by(read, ec, true);
  }
  if (!finished_at_once(exchange)) co_await send_last(exchange, std::string_view());
  co_return AttemptOutcome{};
}

// A child's 200 event stream, relayed an event at a time. Nothing has been
// delivered until its first event with work in it (is_substantive_event):
// comments and the child's empty chunks before it are held back, and an error
// in that time sends the request to another child. [DONE] is held until the
// stream ends, because the real child sends its quota error after it. Later
// error events reach the client in the OpenAI shape, then [DONE].
awaitable<AttemptOutcome> ChildAttempt::relay_events(Exchange& exchange) {
  deadlines_.become_stream(Clock::now());
  StreamGate gate;
  while (!exchange.parser.is_done()) {
    error_code ec;
    Read read = Read::ok;
    if (!piece_buffered(exchange, read, ec)) read = co_await read_from_child(exchange, ec);
    const std::string_view received = piece_of(exchange);
    if (!received.empty()) {
      std::optional<AttemptOutcome> ended = co_await pass_events(exchange, gate, received);
      if (ended) {
        co_return *ended;
      }
    }
    if (read == Read::ok) continue;
    AttemptOutcome outcome;
    outcome.status = 200;
    if (!gate.started && read == Read::upstream_error) {
      outcome.end = AttemptEnd::refused;
      outcome.error = "its stream broke off before any work was delivered: " + ec.message();
      co_return outcome;
    }
    if (read == Read::quota_retry) {
      outcome = ended_by(read, ec, false);
      outcome.status = 200;
      co_return outcome;
    }
    if (!client_.committed() && read != Read::client_gone) {
      const bool started = co_await client_.start(exchange.parser.get(), std::nullopt, true);
      if (!started) {
        co_return outcome;
      }
    }
    outcome = ended_by(read, ec, true);
    outcome.status = 200;
    co_return outcome;
  }
  co_return co_await finish_events(exchange, gate);
}

// One piece of the child's stream through the gate; nullopt while the stream goes on.
awaitable<std::optional<AttemptOutcome>> ChildAttempt::pass_events(Exchange& exchange, StreamGate& gate,
                                                                   std::string_view received) {
  child_sent(received);
  AttemptOutcome outcome;
  outcome.status = 200;
  const std::optional<StreamError> failure = gate.take(received);
  if (failure) {
    outcome.quota = failure->quota;
    if (failure->quota) outcome.quota_reason = "out of quota: " + failure->message;
  }
  if (failure && !gate.started) {
    outcome.end = AttemptEnd::refused;
    outcome.error = "its stream failed before any work was delivered: " + failure->message;
    co_return outcome;
  }
  const error_code no_error;
  if (gate.started && !client_.committed()) {
    const bool started = co_await client_.start(exchange.parser.get(), std::nullopt, true);
    if (!started) {
      co_return ended_by(Read::client_gone, no_error, true);
    }
  }
  if (failure) {
    spdlog::warn("child {} sent an error event mid-stream: {}", child_.name, failure->message);
    outcome.error = failure->message;
    const errc code = failure->quota ? errc::stream_quota_exhausted : errc::child_stream_error;
    std::string events = std::move(gate.out) + stream_abort_events(code, failure->message);
    co_await client_.end_stream_with(std::move(events));
    co_return outcome;
  }
  if (!gate.out.empty()) {
    delivered_ = true;
    const bool sent = co_await client_.send(gate.out);
    if (!sent) {
      co_return ended_by(Read::client_gone, no_error, true);
    }
  }
  co_return std::nullopt;
}

// The child's stream ended well: what the gate held back ([DONE]), then the end of the body.
awaitable<AttemptOutcome> ChildAttempt::finish_events(Exchange& exchange, StreamGate& gate) {
  AttemptOutcome outcome;
  outcome.status = 200;
  std::string rest = gate.finish();
  if (!gate.started && rest.empty()) {
    outcome.end = AttemptEnd::refused;
    outcome.error = "its stream ended before its first event";
    co_return outcome;
  }
  if (!client_.committed()) {
    const bool started = co_await client_.start(exchange.parser.get(), std::nullopt, true);
    if (!started) {
      co_return outcome;
    }
  }
  co_await send_last(exchange, rest);
  co_return outcome;
}

bool ChildAttempt::heartbeats_apply() const {
  return deadlines_.heartbeats_on() && (settings_.heartbeats_for_stream || client_.reading_events());
}

void ChildAttempt::child_sent(std::string_view bytes) {
  deadlines_.child_sent(Clock::now());
  answer_watch_.scan(bytes, deadlines_.stream());
}

// A read from the child that wakes for heartbeats and deadlines, and ends at
// once when the client goes away or the relay is steered from outside.
template <class StartRead>
awaitable<ChildAttempt::Read> ChildAttempt::watched_read(TcpStream& upstream, StartRead start_read, error_code& ec) {
  while (true) {
    const auto now = Clock::now();
    switch (deadlines_.expired(now)) {
      case Expiry::total:
        co_return Read::total_timeout;
      case Expiry::idle:
        co_return Read::idle_timeout;
      case Expiry::stall:
        co_return Read::stalled;
      case Expiry::none:
      case Expiry::queue:
        break;
    }
    if (signals_->cancelled) co_return Read::cancelled;
    if (signals_->client_gone) co_return Read::client_gone;
    if (std::exchange(signals_->quota_retry, false) && !delivered_) co_return Read::quota_retry;
    if (deadlines_.client_watch_due(now)) {
      deadlines_.client_watched();
      if (!signals_->client_watched) watch_client(signals_);
    }
    const auto wake = deadlines_.next_wake(heartbeats_apply());
    signals_->upstream = &upstream;
    signals_->tick = false;
    if (wake != RelayDeadlines::kNever && !(signals_->timer_armed && signals_->timer_expiry == wake)) {
      timer_.expires_at(wake);  // a wait for another moment ends as aborted
      signals_->timer_armed = true;
      signals_->timer_expiry = wake;
      timer_.async_wait([signals = signals_](error_code timer_ec) {
        if (timer_ec) return;
        signals->timer_armed = false;
        // Between reads nothing is woken: the next read looks at the deadlines first.
        if (signals->upstream == nullptr) return;
        signals->tick = true;
        error_code ignored;
        signals->upstream->socket().cancel(ignored);
      });
    }
    ec = {};
    co_await start_read(ec);
    signals_->upstream = nullptr;

    if (signals_->cancelled) co_return Read::cancelled;
    if (signals_->client_gone) co_return Read::client_gone;
    if (ec == net::error::operation_aborted && signals_->quota_retry) continue;  // decided at the top
    if (ec == http::error::need_buffer) ec = {};
    if (ec == net::error::operation_aborted && signals_->tick) {
      if (heartbeats_apply() && deadlines_.heartbeat_due(Clock::now())) {
        const bool sent = co_await client_.heartbeat();
        if (!sent) {
          co_return Read::client_gone;
        }
      }
      continue;
    }
    co_return ec ? Read::upstream_error : Read::ok;
  }
}

}  // namespace coordinator
