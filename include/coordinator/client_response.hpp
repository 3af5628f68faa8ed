#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "coordinator/asio.hpp"
#include "coordinator/errors.hpp"
#include "coordinator/protocol_answer.hpp"
#include "coordinator/relay_deadlines.hpp"
#include "coordinator/relay_signals.hpp"
#include "coordinator/responses.hpp"

namespace coordinator {

using Request = http::request<http::string_body>;

// Everything that goes to the client of one relayed request: the head (the
// child's, or an SSE head of our own when heartbeats must start first), the
// framing (length, chunked or close), body pieces, heartbeats, the error event
// and [DONE] that end a broken stream, and whether the connection can carry
// another request. One per request; knows nothing of children.
// With a ProtocolAnswer (a Responses, Anthropic or Gemini client), what the
// child sends is turned into that protocol on its way: a stream event by
// event, a JSON answer whole once it is in; the coordinator's own errors too.
class ClientResponse {
 public:
  ClientResponse(TcpStream& client, const Request& request, bool keep_alive, Clock::duration send_timeout,
                 RelayDeadlines& deadlines, std::shared_ptr<RelaySignals> signals, ProtocolAnswer* protocol = nullptr);

  // Starts the answer with a child's head (status, fields; hop-by-hop fields
  // dropped); `length` is its body's, when known. A non-stream head waits to go
  // out with the first body bytes.
  awaitable<bool> start(const http::response_header<>& child_head, std::optional<std::uint64_t> length,
                        bool stream_mode);
  // start in two steps, so that the common case costs no coroutine frame:
  // begin prepares the head and says whether it must go out now (a stream),
  // send_head then writes it.
  bool begin(const http::response_header<>& child_head, std::optional<std::uint64_t> length, bool stream_mode);
  awaitable<bool> send_head();
  awaitable<bool> send(std::string_view bytes);
  // Ends the body (the last chunk, or the held head of an empty body); the
  // connection may then carry another request if both sides allow it.
  awaitable<bool> finish();
  // finish without a write, when none is needed (a length-framed body all
  // sent); false when finish() must write.
  bool finish_at_once();
  // A comment line that keeps a silent stream alive; before any answer it
  // commits to a 200 SSE answer of our own.
  awaitable<bool> heartbeat();

  // An error made by the coordinator: the JSON error before anything was
  // sent, else the error event that ends the stream. `retry_after` > 0
  // overrides the table's Retry-After.
  awaitable<void> fail(errc error, std::string message, long retry_after = 0);
  // Ends an answer that has started: an SSE error event and [DONE] when the
  // client reads a stream, else just a closed connection. `type` and `code`
  // may be a child's own error's.
  awaitable<void> abort(std::string message, std::string_view type, std::string_view code);
  awaitable<void> abort(errc error, std::string message);
  // Ends a stream with `events` already written as SSE (the child's last
  // events and our error event); the connection is not reused.
  awaitable<void> end_stream_with(std::string events);

  bool committed() const { return committed_; }
  bool gone() const { return signals_->client_gone; }
  // The client reads an event stream (the child's, or our heartbeats').
  bool reading_events() const { return sse_; }
  bool reusable() const { return reusable_; }
  unsigned status() const { return status_; }
  std::uint64_t bytes_sent() const { return bytes_sent_; }
  double stream_ttfb() const { return stream_ttfb_; }
  void mark_gone();

 private:
  enum class Framing { length, chunked, close };

  std::string head_bytes(const http::response_header<>& child_head, std::optional<std::uint64_t> length);
  awaitable<bool> write(net::const_buffer head, net::const_buffer data, bool last_chunk);
  // Bytes of our own (heartbeats, error events): never through the protocol.
  awaitable<bool> send_raw(std::string_view bytes);
  static awaitable<bool> nothing_to_send();
  awaitable<void> end_events(std::string events);
  // The protocol's side of begin, finish and abort.
  bool begin_translated(const http::response_header<>& child_head, bool stream_mode);
  awaitable<bool> send_translated(std::string_view bytes);
  awaitable<bool> finish_translated();
  awaitable<bool> send_whole(unsigned status, std::string body, std::string retry_after);

  TcpStream& client_;
  const Request& request_;
  const Clock::duration send_timeout_;
  RelayDeadlines& deadlines_;
  std::shared_ptr<RelaySignals> signals_;
  const Clock::time_point started_ = Clock::now();
  bool keep_alive_;
  bool committed_ = false;
  bool sse_ = false;
  bool reusable_ = false;
  Framing framing_ = Framing::length;
  std::string pending_head_;    // a non-stream answer's head, sent with its first body bytes
  ProtocolAnswer* protocol_;    // null: the client speaks chat completions, bytes pass unchanged
  std::string pending_events_;  // a translated stream's opening events, sent with its head
  bool collecting_ = false;     // a translated JSON answer: held until it is whole
  bool stream_wanted_ = false;  // the client asked for a stream (a JSON answer is turned into one)
  std::string collected_;
  std::string child_retry_after_;
  unsigned status_ = 0;
  std::uint64_t bytes_sent_ = 0;
  double stream_ttfb_ = -1;
};

}  // namespace coordinator
