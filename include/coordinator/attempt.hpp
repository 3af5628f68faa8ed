#pragma once

#include <memory>
#include <optional>
#include <string>

#include "coordinator/asio.hpp"
#include "coordinator/child.hpp"
#include "coordinator/child_answers.hpp"
#include "coordinator/child_request.hpp"
#include "coordinator/client_response.hpp"
#include "coordinator/relay_deadlines.hpp"
#include "coordinator/relay_signals.hpp"
#include "coordinator/upstream.hpp"

namespace coordinator {

// How one attempt on one child ended.
enum class AttemptEnd {
  answered,     // the child's answer (or its error) reached the client, or it could not be sent
  refused,      // nothing of it reached the client: another child may take the request
  client_gone,  // the client left while the child worked
  cancelled,    // POST /v1/cancel/{req_id} ended it
  stalled,      // a stream's child sent nothing for --stall-timeout
  timed_out,    // --request-timeout or --stream-idle-timeout (see `expiry`)
  broke_off,    // the child's connection failed after its answer had started
};

// What the attempt saw, for the relay to decide on and report.
struct AttemptOutcome {
  AttemptEnd end = AttemptEnd::answered;
  std::string error;                  // what went wrong, for the log and the last error
  unsigned status = 0;                // the child's answer status, when it sent a head
  bool relayed = false;               // the status was relayed (it counts for outlier ejection)
  bool mid_answer = false;            // the client already had bytes of this answer
  bool rate_limited = false;          // a 429: the child cools down
  bool quota = false;                 // the account is spent (530, a quota error in a stream, its log)
  std::string quota_reason;           // set when the child must cool down for it (not yet done elsewhere)
  bool connect_failed = false;        // no connection could be made
  std::optional<double> retry_after;  // seconds, from the child's Retry-After
  Expiry expiry = Expiry::none;       // timed_out: which deadline passed
};

// The parts of the configuration an attempt uses.
struct AttemptSettings {
  Clock::duration connect_timeout;
  bool heartbeats_for_stream;  // --sse-heartbeat applies to this request if it becomes a stream
};

// One try of a request on one child: a pooled connection or a new one, the
// request sent, the head read, the body relayed through `client`. A pooled
// connection that fails before any byte of an answer is retried once on a
// fresh one. Reports nothing itself: the relay decides from the outcome.
class ChildAttempt {
 public:
  ChildAttempt(std::size_t index, const Child& child, UpstreamPool& pool, ChildRequest& request, ClientResponse& client,
               RelayDeadlines& deadlines, std::shared_ptr<RelaySignals> signals, SteadyTimer& timer,
               AnswerWatch& answer_watch, const AttemptSettings& settings);

  awaitable<AttemptOutcome> run();

 private:
  enum class Read { ok, upstream_error, client_gone, total_timeout, idle_timeout, stalled, cancelled, quota_retry };
  using Parser = http::response_parser<http::buffer_body>;
  struct Exchange;

  awaitable<AttemptOutcome> answer(Exchange& exchange);
  awaitable<AttemptOutcome> relay_error(Exchange& exchange);
  awaitable<AttemptOutcome> relay_body(Exchange& exchange);
  awaitable<AttemptOutcome> relay_events(Exchange& exchange);
  awaitable<std::optional<AttemptOutcome>> pass_events(Exchange& exchange, StreamGate& gate, std::string_view received);
  awaitable<AttemptOutcome> finish_events(Exchange& exchange, StreamGate& gate);
  static awaitable<AttemptOutcome> ready(AttemptOutcome outcome);
  awaitable<AttemptOutcome> abort_unstreamed(unsigned status);
  awaitable<AttemptOutcome> send_head_then_body(Exchange& exchange);
  bool piece_buffered(Exchange& exchange, Read& read, error_code& ec);
  awaitable<Read> read_from_child(Exchange& exchange, error_code& ec);
  static std::string_view piece_of(Exchange& exchange);
  bool take_buffered(Exchange& exchange, error_code& ec);
  template <class StartRead>
  awaitable<Read> watched_read(TcpStream& upstream, StartRead start_read, error_code& ec);
  awaitable<void> send_last(Exchange& exchange, std::string_view bytes);
  bool finished_at_once(Exchange& exchange);
  void give_back(Exchange& exchange);
  AttemptOutcome ended_by(Read read, const error_code& ec, bool mid_answer) const;
  bool heartbeats_apply() const;
  void child_sent(std::string_view bytes);

  const std::size_t index_;
  const Child& child_;
  UpstreamPool& pool_;
  ChildRequest& request_;
  ClientResponse& client_;
  RelayDeadlines& deadlines_;
  std::shared_ptr<RelaySignals> signals_;
  SteadyTimer& timer_;
  AnswerWatch& answer_watch_;
  const AttemptSettings& settings_;
  bool delivered_ = false;  // bytes of the child's answer reached the client: no retry from here on
};

}  // namespace coordinator
