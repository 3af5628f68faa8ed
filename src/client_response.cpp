#include "coordinator/client_response.hpp"

#include "coordinator/field_lookup.hpp"
#include "coordinator/http_util.hpp"

namespace coordinator {

namespace {

constexpr std::string_view kHeartbeat = ": keep-alive\n\n";
// A translated JSON answer is held whole; one larger than this is no chat answer.
constexpr std::size_t kMaxTranslatedAnswer = std::size_t{64} * 1024 * 1024;

http::response<http::empty_body> own_event_stream_head(unsigned version) {
  http::response<http::empty_body> own{http::status::ok, version};
  own.set(http::field::content_type, "text/event-stream");
  own.set(http::field::cache_control, "no-cache");
  return own;
}

}  // namespace

ClientResponse::ClientResponse(TcpStream& client, const Request& request, bool keep_alive, Clock::duration send_timeout,
                               RelayDeadlines& deadlines, std::shared_ptr<RelaySignals> signals,
                               ProtocolAnswer* protocol)
    : client_(client),
      request_(request),
      send_timeout_(send_timeout),
      deadlines_(deadlines),
      signals_(std::move(signals)),
      keep_alive_(keep_alive),
      protocol_(protocol) {}

void ClientResponse::mark_gone() {
  signals_->client_gone = true;
  keep_alive_ = false;
  reusable_ = false;
}

// The head, written straight into a string field by field, with the bytes and
// the order Beast gave for a response<empty_body> built from the child's head:
// no fields object, no serializer.
std::string ClientResponse::head_bytes(const http::response_header<>& child_head, std::optional<std::uint64_t> length) {
  const std::string_view connection = field_value(child_head, http::field::connection);
  // "keep-alive" names only itself, which is hop-by-hop anyway.
  const bool connection_names_fields = !connection.empty() && !iequals(connection, "keep-alive");
  // By Beast's field codes: string compares per field were a tenth of the proxy's instructions.
  const auto passes = [&](const auto& field) {
    return !is_hop_by_hop(field.name()) && field.name() != http::field::content_length &&
           !(connection_names_fields && connection_lists(connection, field.name_string()));
  };
  std::string_view content_type;
  for (const auto& field : child_head) {
    if (field.name() == http::field::content_type && passes(field)) {
      content_type = field.value();
      break;
    }
  }
  sse_ = is_event_stream(content_type);
  const std::string_view request_id = request_id_of(request_);
  const unsigned version = request_.version();
  // By number: a status Beast has no name for (418, 520 ...) must pass unchanged.
  const unsigned status = child_head.result_int();
  const std::string_view reason = http::obsolete_reason(static_cast<http::status>(status));
  std::string out;
  out.reserve(256 + reason.size());
  out += "HTTP/";
  out += static_cast<char>('0' + version / 10);
  out += '.';
  out += static_cast<char>('0' + version % 10);
  out += ' ';
  out += std::to_string(status);
  out += ' ';
  out += reason;
  out += "\r\n";
  const auto add = [&out](std::string_view name, std::string_view value) {
    out += name;
    out += ": ";
    out += value;
    out += "\r\n";
  };
  for (const auto& field : child_head) {
    if (!passes(field)) continue;
    // Fields the coordinator sets itself replace the child's.
    const http::field code = field.name();
    const std::string_view name = field.name_string();
    if (code == http::field::server ||
        (!request_id.empty() && code == http::field::unknown && iequals(name, "x-request-id")) ||
        (sse_ && code == http::field::cache_control)) {
      continue;
    }
    add(name, field.value());
  }
  add("Server", "coordinator");
  if (!request_id.empty()) add(kRequestIdField, request_id);
  if (length) {
    add("Content-Length", std::to_string(*length));
    framing_ = Framing::length;
  } else if (version >= 11) {
    add("Transfer-Encoding", "chunked");
    framing_ = Framing::chunked;
  } else {
    framing_ = Framing::close;
    keep_alive_ = false;
  }
  if (version >= 11 && !keep_alive_) add("Connection", "close");
  if (version < 11 && keep_alive_) add("Connection", "keep-alive");
  if (sse_) add("Cache-Control", "no-cache");
  out += "\r\n";
  return out;
}

bool ClientResponse::begin(const http::response_header<>& child_head, std::optional<std::uint64_t> length,
                           bool stream_mode) {
  if (protocol_ != nullptr) return begin_translated(child_head, stream_mode);
  pending_head_ = head_bytes(child_head, length);
  status_ = child_head.result_int();
  committed_ = true;
  if (stream_mode) stream_ttfb_ = std::chrono::duration<double>(Clock::now() - started_).count();
  // Not a stream: the head waits for the first body bytes and goes out in
  // the same write (one segment, one wake-up of the client, not two).
  return sse_ || stream_mode;
}

// A child's event stream becomes the protocol's (our head, its opening
// events); anything else is held until it is whole (finish_translated).
bool ClientResponse::begin_translated(const http::response_header<>& child_head, bool stream_mode) {
  committed_ = true;
  status_ = child_head.result_int();
  stream_wanted_ = stream_mode;
  if (status_ == 200 && is_event_stream(field_value(child_head, http::field::content_type))) {
    pending_head_ = head_bytes(own_event_stream_head(request_.version()), std::nullopt);
    pending_events_ = protocol_->stream_start();
    stream_ttfb_ = std::chrono::duration<double>(Clock::now() - started_).count();
    return true;
  }
  collecting_ = true;
  child_retry_after_ = std::string(field_value(child_head, http::field::retry_after));
  return false;
}

awaitable<bool> ClientResponse::send_head() {
  const std::string events = std::move(pending_events_);
  pending_events_.clear();
  co_return co_await write(net::buffer(pending_head_), net::buffer(events), false);
}

awaitable<bool> ClientResponse::start(const http::response_header<>& child_head, std::optional<std::uint64_t> length,
                                      bool stream_mode) {
  if (!begin(child_head, length, stream_mode)) co_return true;
  co_return co_await send_head();
}

awaitable<bool> ClientResponse::write(net::const_buffer head, net::const_buffer data, bool last_chunk) {
  error_code ec;
  client_.expires_after(send_timeout_);
  if (framing_ == Framing::chunked && data.size() > 0) {
    if (last_chunk) {
      co_await net::async_write(client_, beast::buffers_cat(head, http::make_chunk(data), http::make_chunk_last()),
                                use_awaitable_ec(ec));
    } else {
      co_await net::async_write(client_, beast::buffers_cat(head, http::make_chunk(data)), use_awaitable_ec(ec));
    }
  } else if (framing_ == Framing::chunked && last_chunk) {
    co_await net::async_write(client_, beast::buffers_cat(head, http::make_chunk_last()), use_awaitable_ec(ec));
  } else {
    co_await net::async_write(client_, beast::buffers_cat(head, data), use_awaitable_ec(ec));
  }
  pending_head_.clear();
  if (ec) {
    mark_gone();
    co_return false;
  }
  bytes_sent_ += data.size();
  if (data.size() > 0) deadlines_.client_sent(Clock::now());
  co_return true;
}

// Not a coroutine, nor is send_raw: a chat answer's bytes go straight to
// write, in the caller's frame.
awaitable<bool> ClientResponse::send(std::string_view bytes) {
  if (protocol_ != nullptr) return send_translated(bytes);
  return send_raw(bytes);
}

awaitable<bool> ClientResponse::send_translated(std::string_view bytes) {
  if (collecting_) {
    collected_.append(bytes);
    if (collected_.size() <= kMaxTranslatedAnswer) co_return true;
    co_await abort(errc::child_stream_aborted, "The child's answer is too large to translate.");
    co_return false;
  }
  const std::string events = protocol_->stream_bytes(bytes);
  co_return co_await send_raw(events);
}

awaitable<bool> ClientResponse::send_raw(std::string_view bytes) {
  if (bytes.empty()) return nothing_to_send();
  return write(net::buffer(pending_head_), net::buffer(bytes.data(), bytes.size()), false);
}

awaitable<bool> ClientResponse::nothing_to_send() {
  co_return true;
}

bool ClientResponse::finish_at_once() {
  if (protocol_ != nullptr || !pending_head_.empty() || framing_ == Framing::chunked) return false;
  reusable_ = keep_alive_;
  return true;
}

// A complete answer of our own making (a translated JSON answer or error).
awaitable<bool> ClientResponse::send_whole(unsigned status, std::string body, std::string retry_after) {
  status_ = status;
  collecting_ = false;
  ExtraHeaders extra;
  if (!retry_after.empty()) extra.emplace_back("Retry-After", std::move(retry_after));
  add_request_id(extra, request_);
  const std::size_t size = body.size();
  const bool sent =
      co_await send_json(client_, request_.version(), status, std::move(body), keep_alive_, send_timeout_, extra);
  if (!sent) mark_gone();
  if (sent) bytes_sent_ += size;
  reusable_ = sent && keep_alive_;
  co_return sent;
}

awaitable<bool> ClientResponse::finish_translated() {
  if (collecting_ && stream_wanted_ && status_ >= 200 && status_ < 300) {
    // The child answered a stream request with JSON (the real child's forced
    // tool call does): the client still gets the stream it asked for.
    collecting_ = false;
    std::string events = protocol_->stream_from_whole(collected_);
    collected_.clear();
    pending_head_ = head_bytes(own_event_stream_head(request_.version()), std::nullopt);
    status_ = 200;
    const bool sent = co_await write(net::buffer(pending_head_), net::buffer(events), true);
    reusable_ = sent && keep_alive_;
    co_return sent;
  }
  if (collecting_) {
    ProtocolAnswer::Whole whole = protocol_->whole(status_, collected_);
    collected_.clear();
    std::string retry = whole.status >= 400 ? child_retry_after_ : std::string();  // named: see fail()
    co_return co_await send_whole(whole.status, std::move(whole.body), std::move(retry));
  }
  const std::string events = protocol_->stream_finish();
  const bool sent = co_await write(net::buffer(pending_head_), net::buffer(events), true);
  reusable_ = sent && keep_alive_;
  co_return sent;
}

awaitable<bool> ClientResponse::finish() {
  if (protocol_ != nullptr) co_return co_await finish_translated();
  if (finish_at_once()) co_return true;
  // The held head of an empty body goes out now, with the last chunk if chunked.
  const bool sent = co_await write(net::buffer(pending_head_), net::const_buffer(), true);
  reusable_ = sent && keep_alive_;
  co_return sent;
}

awaitable<bool> ClientResponse::heartbeat() {
  deadlines_.client_sent(Clock::now());
  if (!committed_) {
    // The child has not answered yet: commit to an SSE answer so the client
    // (and any load balancer in between) sees the connection alive.
    const auto own = own_event_stream_head(request_.version());
    const bool started = co_await start(own, std::nullopt, true);
    if (!started) {
      co_return false;
    }
  }
  if (protocol_ != nullptr) {
    const std::string beat = protocol_->keepalive();
    co_return co_await send_raw(beat);
  }
  co_return co_await send_raw(kHeartbeat);
}

// Our last events of a broken stream, then its end; the connection is not reused.
awaitable<void> ClientResponse::end_events(std::string events) {
  keep_alive_ = false;
  const bool sent = co_await send_raw(events);
  if (sent) {
    co_await write(net::buffer(pending_head_), net::const_buffer(), true);
  }
  reusable_ = false;
}

awaitable<void> ClientResponse::abort(std::string message, std::string_view type, std::string_view code) {
  // The error event, [DONE], then a close: the answer cannot be trusted, so
  // neither is the connection it came on.
  keep_alive_ = false;
  if (protocol_ != nullptr && collecting_) {
    // Nothing of a held answer went out: the client gets a whole error instead.
    const unsigned status = status_of_code(code).value_or(502);
    co_await send_whole(status, protocol_->error_json(status, message, code), std::string());
  } else if (protocol_ != nullptr && sse_) {
    co_await end_events(protocol_->stream_error(status_of_code(code).value_or(502), message));
  } else if (sse_ && framing_ != Framing::length) {
    co_await end_events(stream_abort_events(message, type, code));
  }
  reusable_ = false;
}

awaitable<void> ClientResponse::abort(errc error, std::string message) {
  const ErrorSpec& spec = spec_of(error);
  co_await abort(std::move(message), spec.type, spec.code);
}

awaitable<void> ClientResponse::end_stream_with(std::string events) {
  // The child's events and our error event, in the protocol's shape when it has one.
  if (protocol_ != nullptr) events = protocol_->stream_bytes(events);
  co_await end_events(std::move(events));
}

awaitable<void> ClientResponse::fail(errc error, std::string message, long retry_after) {
  if (gone()) co_return;
  if (committed_) {
    // Heartbeats sent while it waited already committed a 200 SSE answer.
    co_await abort(error, std::move(message));
    co_return;
  }
  const ErrorSpec& spec = spec_of(error);
  if (retry_after <= 0) retry_after = spec.retry_after;
  if (protocol_ != nullptr) {
    // Named: g++ 12 destroys a temporary of a ?: inside a co_await statement twice.
    std::string retry = retry_after > 0 ? std::to_string(retry_after) : std::string();
    co_await send_whole(spec.status, protocol_->error_json(spec.status, message, spec.code), std::move(retry));
    co_return;
  }
  status_ = spec.status;
  ExtraHeaders extra;
  if (retry_after > 0) extra.emplace_back("Retry-After", std::to_string(retry_after));
  add_request_id(extra, request_);
  const bool sent = co_await send_json(client_, request_.version(), spec.status, error_body(error, message),
                                       keep_alive_, send_timeout_, std::move(extra));
  if (!sent) mark_gone();
  reusable_ = sent && keep_alive_;
}

}  // namespace coordinator
