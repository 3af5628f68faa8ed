// Unit tests of the relay (forward_request: Relay, ChildAttempt,
// ClientResponse) against scripted children, where the code is hardest:
// retries, fail-over statuses, streams that fail before or after they start,
// heartbeats, clients that leave, cancels, and the fleet-wide errors.
//
// Both sides are real loopback TCP sockets on 127.0.0.1 (port 0). The client
// end is read by the test; the server end is a TcpStream handed to
// forward_request. Each "child" is an in-process coroutine on its own
// acceptor that answers with exactly the bytes and pauses a test scripts.
// beast::test::stream (Boost 1.74) cannot stand in for either side: it has no
// cancel of a pending read, and the relay's deadline and heartbeat wake-ups
// (and ActiveRelays::cancel) work by cancelling the read on the child socket.
//
// One io_context per test, run on the test thread with every wait bounded
// (RelayHarness::run_until). g++ 12 coroutine miscompiles (GCC PR 106188 and
// relatives): no co_await in a condition or inside && || ?:, no braced list in
// a co_await expression, and coroutines given to co_spawn are named functions
// taking their arguments by value (never capturing lambdas).

#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <deque>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "coordinator/asio.hpp"
#include "coordinator/config.hpp"
#include "coordinator/dispatcher.hpp"
#include "coordinator/errors.hpp"
#include "coordinator/registry.hpp"
#include "coordinator/relay.hpp"
#include "coordinator/relay_deadlines.hpp"
#include "coordinator/upstream.hpp"

using namespace coordinator;
using namespace std::chrono_literals;

namespace {

// ---------------------------------------------------------------------------
// What a scripted child sends.

const std::string kSseHead = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
const std::string kLastChunk = "0\r\n\r\n";
const std::string kDone = "data: [DONE]\n\n";
constexpr std::string_view kCancelPrefix = "/v1/cancel/";
// The req_id the real child puts in its chunk ids ({prefix}{req_id}-{ts}).
constexpr std::string_view kReqId = "abc1234";
const std::string kChunkId = "chatcmpl-abc1234-1700000000";

std::string chunk(std::string_view data) {
  std::array<char, 24> size{};
  std::snprintf(size.data(), size.size(), "%zx\r\n", data.size());
  return std::string(size.data()) + std::string(data) + "\r\n";
}

std::string answer_head(unsigned status) {
  std::string reason(http::obsolete_reason(static_cast<http::status>(status)));
  if (reason == "<unknown-status>") reason = "Unknown";
  return "HTTP/1.1 " + std::to_string(status) + " " + reason + "\r\n";
}

// A whole answer with a Content-Length; `extra` holds more header lines, each ending in CRLF.
std::string json_answer(unsigned status, const std::string& body, const std::string& extra = "") {
  return answer_head(status) + "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n" + extra + "\r\n" + body;
}

std::string completion(const std::string& text) {
  return R"({"id":"chatcmpl-xyz9876-1700000000","object":"chat.completion",)"
         R"("choices":[{"index":0,"message":{"role":"assistant","content":")" +
         text + R"("}}]})";
}

std::string content_event(const std::string& text, const std::string& id = kChunkId) {
  return R"(data: {"id":")" + id + R"(","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":")" +
         text + "\"}}]}\n\n";
}

// Not work for the client (no content): held back until the first content.
std::string role_event(const std::string& id = kChunkId) {
  return R"(data: {"id":")" + id +
         R"(","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant"}}]})"
         "\n\n";
}

// ---------------------------------------------------------------------------
// The scripted child.

struct Step {
  enum class Kind { write, pause, read_request, close, wait_eof };
  Kind kind = Kind::write;
  std::string bytes;
  Clock::duration pause{};
};
Step emit(std::string bytes) {
  return Step{Step::Kind::write, std::move(bytes), {}};
}
Step pause_for(Clock::duration duration) {
  return Step{Step::Kind::pause, {}, duration};
}
// Reads the next request on the same connection (keep-alive).
Step read_request() {
  return Step{Step::Kind::read_request, {}, {}};
}
Step close_connection() {
  return Step{Step::Kind::close, {}, {}};
}
// Reads until the coordinator closes the connection (counted in `eofs`).
Step wait_for_eof() {
  return Step{Step::Kind::wait_eof, {}, {}};
}

// One script per connection, after its first request was read; the
// connection is closed when the script ends.
using Script = std::vector<Step>;

struct ScriptedChild {
  explicit ScriptedChild(net::io_context& io) : acceptor(io, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0)) {}
  int port() const { return acceptor.local_endpoint().port(); }
  void stop() {
    error_code ignored;
    acceptor.close(ignored);
    for (const auto& socket : sockets) socket->close(ignored);
    for (const auto& timer : timers) timer->cancel();
  }

  Acceptor acceptor;
  std::deque<Script> scripts;        // for the relayed requests' connections, in the order they come
  std::vector<std::string> targets;  // every relayed request's target (cancels not included)
  std::vector<std::string> cancels;  // the req_id of each POST /v1/cancel/{req_id}
  int connections = 0;               // connections that carried a relayed request
  int unscripted = 0;                // of them, those no script was left for (closed at once)
  int eofs = 0;                      // wait_for_eof saw the coordinator close the connection
  std::optional<Clock::time_point> first_write;
  std::vector<std::shared_ptr<Socket>> sockets;
  std::vector<std::shared_ptr<SteadyTimer>> timers;
};

// co_spawn's handler: an exception that escapes a test coroutine fails the test.
struct FailOnEscape {
  const char* what;
  void operator()(std::exception_ptr error) const {
    if (!error) return;
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      ADD_FAILURE() << what << ": exception escaped: " << e.what();
    } catch (...) {
      ADD_FAILURE() << what << ": a non-standard exception escaped";
    }
  }
};

awaitable<void> serve_connection(ScriptedChild* child, std::shared_ptr<Socket> socket) {
  const auto executor = co_await net::this_coro::executor;
  beast::flat_buffer buffer;
  error_code ec;
  http::request<http::string_body> first;
  co_await http::async_read(*socket, buffer, first, use_awaitable_ec(ec));
  if (ec) {
    co_return;
  }
  const std::string target(first.target());
  if (target.rfind(kCancelPrefix, 0) == 0) {
    // The coordinator's own POST /v1/cancel/{req_id} (a fresh connection).
    child->cancels.push_back(target.substr(kCancelPrefix.size()));
    const std::string body = R"({"success":true})";
    const std::string answer =
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
        "\r\nConnection: close\r\n\r\n" + body;
    co_await net::async_write(*socket, net::buffer(answer), use_awaitable_ec(ec));
    socket->close(ec);
    co_return;
  }
  child->targets.push_back(target);
  ++child->connections;
  if (child->scripts.empty()) {
    ++child->unscripted;
    socket->close(ec);
    co_return;
  }
  Script script = std::move(child->scripts.front());
  child->scripts.pop_front();
  for (const Step& step : script) {
    if (step.kind == Step::Kind::write) {
      if (!child->first_write) child->first_write = Clock::now();
      co_await net::async_write(*socket, net::buffer(step.bytes), use_awaitable_ec(ec));
    } else if (step.kind == Step::Kind::pause) {
      auto timer = std::make_shared<SteadyTimer>(executor, step.pause);
      child->timers.push_back(timer);
      co_await timer->async_wait(use_awaitable_ec(ec));
    } else if (step.kind == Step::Kind::read_request) {
      http::request<http::string_body> next;
      co_await http::async_read(*socket, buffer, next, use_awaitable_ec(ec));
      if (!ec) child->targets.push_back(std::string(next.target()));
    } else if (step.kind == Step::Kind::close) {
      break;
    } else {
      std::array<char, 1024> sink{};
      while (!ec) {
        co_await socket->async_read_some(net::buffer(sink), use_awaitable_ec(ec));
      }
      if (ec == net::error::eof || ec == net::error::connection_reset) ++child->eofs;
    }
    if (ec) break;
  }
  socket->close(ec);
}

awaitable<void> accept_loop(ScriptedChild* child) {
  const auto executor = co_await net::this_coro::executor;
  while (true) {
    auto socket = std::make_shared<Socket>(executor);
    error_code ec;
    co_await child->acceptor.async_accept(*socket, use_awaitable_ec(ec));
    if (ec) {
      co_return;
    }
    child->sockets.push_back(socket);
    net::co_spawn(executor, serve_connection(child, socket), FailOnEscape{"scripted child"});
  }
}

// ---------------------------------------------------------------------------
// The client end.

struct ClientEnd {
  explicit ClientEnd(net::io_context& io) : socket(io) {}
  Socket socket;
  std::string received;
  bool eof = false;  // the coordinator closed the connection (or the test did)
  std::optional<Clock::time_point> first_byte;
};

awaitable<void> read_client(ClientEnd* client) {
  std::array<char, 4096> piece{};
  while (true) {
    error_code ec;
    const std::size_t n = co_await client->socket.async_read_some(net::buffer(piece), use_awaitable_ec(ec));
    if (n > 0 && !client->first_byte) client->first_byte = Clock::now();
    client->received.append(piece.data(), n);
    if (ec) {
      client->eof = true;
      co_return;
    }
  }
}

// What the client received, parsed as one HTTP response.
struct Answer {
  bool complete = false;
  http::response<http::string_body> message;
  unsigned status() const { return message.result_int(); }
  std::string header(std::string_view name) const { return std::string(message[name]); }
  const std::string& body() const { return message.body(); }
};

Answer parse_answer(std::string_view raw) {
  http::response_parser<http::string_body> parser;
  parser.eager(true);
  error_code ec;
  while (!raw.empty() && !parser.is_done()) {
    const std::size_t used = parser.put(net::buffer(raw.data(), raw.size()), ec);
    raw.remove_prefix(used);
    if (ec || used == 0) break;
  }
  const bool complete = parser.is_done();
  return Answer{complete, parser.release()};
}

// The SSE events of a body, without the blank lines that end them.
std::vector<std::string> events_of(std::string_view body) {
  std::vector<std::string> events;
  std::size_t start = 0;
  for (std::size_t end = body.find("\n\n"); end != std::string_view::npos; end = body.find("\n\n", start)) {
    events.emplace_back(body.substr(start, end - start));
    start = end + 2;
  }
  if (start < body.size()) events.emplace_back(body.substr(start));
  return events;
}

// The "error" member of a JSON body, or of an SSE event's data.
nlohmann::json error_of(std::string_view text) {
  if (text.substr(0, 6) == "data: ") text.remove_prefix(6);
  const auto json = nlohmann::json::parse(text, nullptr, false);
  if (!json.is_object() || !json.contains("error")) return nlohmann::json{};
  return json["error"];
}

// ---------------------------------------------------------------------------
// One relay's world: children, registry, dispatcher, pool, and client pairs.

Config test_config() {
  Config config;
  config.connect_timeout = 500ms;
  config.request_timeout = 3s;
  config.stream_idle_timeout = 3s;
  config.stall_timeout = 3s;
  config.sse_heartbeat = 0s;  // off unless a test turns it on
  config.queue_timeout = 1s;
  config.cancel_timeout = 500ms;
  config.client_send_timeout = 1s;
  config.cooldown = 5s;        // a 429 without Retry-After
  config.quota_cooldown = 9s;  // a 530 or a quota error without Retry-After
  return config;
}

std::vector<std::unique_ptr<ScriptedChild>> make_children(net::io_context& io, std::size_t count) {
  std::vector<std::unique_ptr<ScriptedChild>> children;
  for (std::size_t i = 0; i < count; ++i) children.push_back(std::make_unique<ScriptedChild>(io));
  return children;
}

std::vector<Child> entries_for(const std::vector<std::unique_ptr<ScriptedChild>>& children) {
  std::vector<Child> entries;
  for (std::size_t i = 0; i < children.size(); ++i) {
    Child child;
    child.name = "c" + std::to_string(i);
    child.host = "127.0.0.1";
    child.ports.api = children[i]->port();
    child.max_in_flight = 1;
    entries.push_back(child);
  }
  return entries;
}

http::request<http::string_body> chat_request(bool stream) {
  http::request<http::string_body> request{http::verb::post, "/v1/chat/completions", 11};
  request.set(http::field::host, "127.0.0.1");
  request.set(http::field::content_type, "application/json");
  request.set(http::field::authorization, "Bearer client-key");
  request.body() = std::string(R"({"model":"m","stream":)") + (stream ? "true" : "false") +
                   R"(,"messages":[{"role":"user","content":"hi"}]})";
  request.prepare_payload();
  return request;
}

struct RelayHarness;
awaitable<void> run_forward(RelayHarness* harness, TcpStream* server_end, bool stream, bool keep_alive);

struct RelayHarness {
  RelayHarness(std::size_t count, const Config& settings, bool ready = true)
      : config(settings),
        children(make_children(io, count)),
        registry(entries_for(children)),
        dispatcher(registry, Balance::least_busy, 100),
        pool(count, 4, std::chrono::seconds(30)),
        context{config,
                registry,
                dispatcher,
                pool,
                [this](std::size_t child, std::string why) { recycled.emplace_back(child, std::move(why)); },
                nullptr,
                &active,
                nullptr},
        front(io, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0)) {
    registry.set_capacity_listener([this] { dispatcher.pump(); });
    if (ready) {
      for (std::size_t i = 0; i < count; ++i) registry.report_health(i, true, "", 0, Clock::now());
    }
    for (const auto& child : children) net::co_spawn(io, accept_loop(child.get()), FailOnEscape{"accept loop"});
  }

  ~RelayHarness() {
    // Everything still waiting ends on a closed socket or a cancelled timer;
    // run_for returns as soon as no work is left.
    error_code ignored;
    for (const auto& client : clients) client->socket.close(ignored);
    for (auto& server_end : server_ends) server_end.socket().close(ignored);
    for (const auto& child : children) child->stop();
    io.run_for(500ms);
  }

  RelayHarness(const RelayHarness&) = delete;
  RelayHarness& operator=(const RelayHarness&) = delete;

  // A new client connection, and a chat completion forwarded on it.
  void start(bool stream, bool keep_alive = true) {
    request = chat_request(stream);
    ClientEnd& client = *clients.emplace_back(std::make_unique<ClientEnd>(io));
    client.socket.connect(front.local_endpoint());
    Socket accepted(io);
    front.accept(accepted);
    TcpStream& server_end = server_ends.emplace_back(std::move(accepted));
    net::co_spawn(io, run_forward(this, &server_end, stream, keep_alive), FailOnEscape{"forward_request"});
    net::co_spawn(io, read_client(&client), FailOnEscape{"client"});
  }

  // Runs the io_context until `done` holds, for at most `limit`.
  bool run_until(const std::function<bool()>& done, Clock::duration limit = 2s) {
    const auto deadline = Clock::now() + limit;
    while (!done()) {
      const auto now = Clock::now();
      if (now >= deadline) return false;
      if (io.stopped()) io.restart();
      io.run_one_for(deadline - now);
    }
    return true;
  }

  ClientEnd& client() { return *clients.back(); }
  Answer answer() { return parse_answer(client().received); }
  bool answered() { return parse_answer(client().received).complete; }
  // The relay returned and the client has its whole answer.
  bool finished(int forwards = 1) { return forwards_done == forwards && answered(); }
  ScriptedChild& child(std::size_t index) { return *children.at(index); }
  const Child& entry(std::size_t index) const { return registry.at(index); }

  net::io_context io;  // first: destroyed last, after every socket and timer
  Config config;
  std::vector<std::unique_ptr<ScriptedChild>> children;
  Registry registry;
  Dispatcher dispatcher;
  UpstreamPool pool;
  ActiveRelays active;
  std::vector<std::pair<std::size_t, std::string>> recycled;
  ForwardContext context;
  Acceptor front;  // the coordinator's listening socket
  std::deque<std::unique_ptr<ClientEnd>> clients;
  std::deque<TcpStream> server_ends;
  http::request<http::string_body> request;
  std::optional<ForwardResult> result;
  int forwards_done = 0;
};

awaitable<void> run_forward(RelayHarness* harness, TcpStream* server_end, bool stream, bool keep_alive) {
  std::string address = "127.0.0.1";
  ForwardResult result;
  const bool reusable = co_await forward_request(harness->context, *server_end, harness->request, stream,
                                                 /*takes_slot=*/true, keep_alive, address, RequestedModel{}, result);
  EXPECT_EQ(reusable, result.client_reusable);
  harness->result = result;
  ++harness->forwards_done;
  if (!result.client_reusable) {
    // As the HTTP server does: a connection that cannot carry another request is closed.
    error_code ignored;
    server_end->socket().shutdown(Socket::shutdown_send, ignored);
    server_end->socket().close(ignored);
  }
}

double seconds_until(Clock::time_point when) {
  return std::chrono::duration<double>(when - Clock::now()).count();
}

// ---------------------------------------------------------------------------
// 1. A pooled connection that fails before any byte.

TEST(RelayPool, PooledConnectionClosedBeforeAnyByteIsRetriedOnAFreshOne) {
  RelayHarness h(1, test_config());
  // The first connection answers, is pooled, then takes the second request
  // and closes without a byte of answer (a child closing an idle keep-alive
  // connection just as a request arrives).
  h.child(0).scripts.push_back({emit(json_answer(200, completion("first"))), read_request(), close_connection()});
  h.child(0).scripts.push_back({emit(json_answer(200, completion("second")))});

  h.start(false);
  ASSERT_TRUE(h.run_until([&] { return h.finished(1); }));
  EXPECT_EQ(h.answer().status(), 200);
  ASSERT_TRUE(h.result);
  EXPECT_TRUE(h.result->client_reusable);

  h.start(false);
  ASSERT_TRUE(h.run_until([&] { return h.finished(2); }));
  const Answer second = h.answer();
  EXPECT_EQ(second.status(), 200);
  EXPECT_EQ(second.body(), completion("second"));
  EXPECT_EQ(h.result->child, "c0");
  // Two connections, three requests: the second request went out on the
  // pooled one (unanswered), then again on a fresh one.
  EXPECT_EQ(h.child(0).connections, 2);
  EXPECT_EQ(h.child(0).targets.size(), 3u);
  EXPECT_EQ(h.child(0).unscripted, 0);
  // Not the child's fault: no failure is recorded.
  EXPECT_EQ(h.entry(0).state, ChildState::ready);
  EXPECT_EQ(h.entry(0).failures, 0u);
  EXPECT_EQ(h.entry(0).served, 2u);
}

// ---------------------------------------------------------------------------
// 2. Statuses that fail over, and those relayed.

class RelayFailover : public testing::TestWithParam<unsigned> {};

TEST_P(RelayFailover, GoesToTheNextChildAndTheRegistryRecordsIt) {
  const unsigned status = GetParam();
  RelayHarness h(2, test_config());
  const std::string retry_after = status == 429 ? "Retry-After: 7\r\n" : "";
  h.child(0).scripts.push_back({emit(json_answer(status, R"({"detail":"not now"})", retry_after)), wait_for_eof()});
  h.child(1).scripts.push_back({emit(json_answer(200, completion("from c1")))});

  h.start(false);
  ASSERT_TRUE(h.run_until([&] { return h.finished() && h.child(0).eofs == 1; }));
  const Answer answer = h.answer();
  EXPECT_EQ(answer.status(), 200);
  EXPECT_EQ(answer.body(), completion("from c1"));
  EXPECT_EQ(h.result->child, "c1");
  EXPECT_EQ(h.child(0).targets.size(), 1u);
  EXPECT_EQ(h.child(1).targets.size(), 1u);
  EXPECT_EQ(h.child(0).eofs, 1) << "the refused answer's connection is dropped, not pooled";

  const Child& first = h.entry(0);
  if (status == 503) {
    EXPECT_EQ(first.state, ChildState::unhealthy);
    EXPECT_EQ(first.failures, 1u);
  } else if (status == 530) {
    EXPECT_EQ(first.state, ChildState::cooling);
    EXPECT_EQ(first.quota_cooldowns, 1u);
    EXPECT_EQ(first.failures, 0u);
    EXPECT_NEAR(seconds_until(first.cooling_until), to_seconds(h.config.quota_cooldown), 0.5);
    EXPECT_NE(first.last_error.find("quota"), std::string::npos) << first.last_error;
  } else {
    EXPECT_EQ(first.state, ChildState::cooling);
    EXPECT_EQ(first.cooldowns, 1u);
    EXPECT_EQ(first.failures, 0u);
    EXPECT_NEAR(seconds_until(first.cooling_until), 7.0, 0.5) << "the child's Retry-After, not --cooldown";
  }
  EXPECT_EQ(h.entry(1).state, ChildState::ready);
  EXPECT_EQ(h.entry(1).served, 1u);
}

INSTANTIATE_TEST_SUITE_P(Relay, RelayFailover, testing::Values(503u, 530u, 429u),
                         [](const testing::TestParamInfo<unsigned>& info) {
                           return "Status" + std::to_string(info.param);
                         });

struct RelayedCase {
  unsigned status;
  std::string child_body;  // FastAPI's shape
  std::string message;
  std::string type;
  std::string code;
};

class RelayRelayedError : public testing::TestWithParam<RelayedCase> {};

TEST_P(RelayRelayedError, ReachesTheClientInTheOpenAiShapeAndIsNotRetried) {
  const RelayedCase& expected = GetParam();
  RelayHarness h(2, test_config());
  h.child(0).scripts.push_back({emit(json_answer(expected.status, expected.child_body))});

  h.start(false);
  ASSERT_TRUE(h.run_until([&] { return h.finished(); }));
  const Answer answer = h.answer();
  EXPECT_EQ(answer.status(), expected.status);
  EXPECT_EQ(answer.header("Content-Type"), "application/json");
  const auto body = nlohmann::json::parse(answer.body(), nullptr, false);
  ASSERT_TRUE(body.is_object()) << answer.body();
  EXPECT_EQ(body.size(), 1u) << answer.body();  // no "detail" left
  const auto error = error_of(answer.body());
  ASSERT_TRUE(error.is_object()) << answer.body();
  EXPECT_EQ(error.size(), 3u) << answer.body();
  EXPECT_EQ(error.value("message", ""), expected.message);
  EXPECT_EQ(error.value("type", ""), expected.type);
  EXPECT_EQ(error.value("code", ""), expected.code);
  EXPECT_TRUE(h.result->client_reusable);
  EXPECT_EQ(h.result->child, "c0");
  EXPECT_EQ(h.child(1).connections, 0) << "a relayed status is never retried";
  // Every relayed status counts for outlier ejection; a 4xx ends a run of 5xx.
  EXPECT_EQ(h.entry(0).consecutive_server_errors, expected.status >= 500 ? 1u : 0u);
  EXPECT_EQ(h.entry(0).state, ChildState::ready);
  EXPECT_EQ(h.entry(0).failures, 0u);
}

INSTANTIATE_TEST_SUITE_P(
    Relay, RelayRelayedError,
    testing::Values(
        RelayedCase{400, R"({"detail":"bad thing"})", "bad thing", "invalid_request_error", "bad_request"},
        RelayedCase{404, R"({"detail":"Not Found"})", "Not Found", "invalid_request_error", "not_found"},
        RelayedCase{422, R"({"detail":[{"loc":["body","messages"],"msg":"Field required","type":"missing"}]})",
                    "body.messages: Field required", "invalid_request_error", "validation_error"},
        RelayedCase{500, R"({"detail":"[abc1234] page crashed"})", "[abc1234] page crashed", "server_error",
                    "child_error"},
        RelayedCase{502, R"({"detail":"[abc1234] bad gateway"})", "[abc1234] bad gateway", "upstream_error",
                    "bad_gateway"},
        RelayedCase{504, R"({"detail":"[abc1234] too slow"})", "[abc1234] too slow", "timeout", "upstream_timeout"}),
    [](const testing::TestParamInfo<RelayedCase>& info) { return "Status" + std::to_string(info.param.status); });

// ---------------------------------------------------------------------------
// 3. A stream whose first event is an error goes to the next child.

TEST(RelayStream, FirstEventErrorIsRetriedAndTheClientSeesOnlyTheNextChild) {
  RelayHarness h(2, test_config());
  h.child(0).scripts.push_back({emit(kSseHead + chunk(role_event()) +
                                     chunk(R"(data: {"error":{"message":"model overloaded","type":"server_error"}})"
                                           "\n\n")),
                                wait_for_eof()});
  const std::string other = "chatcmpl-def5678-1700000000";
  const std::string c1_events = role_event(other) + content_event("Hello", other) + content_event(" world", other);
  h.child(1).scripts.push_back({emit(kSseHead + chunk(c1_events) + chunk(kDone) + kLastChunk)});

  h.start(true);
  ASSERT_TRUE(h.run_until([&] { return h.finished() && h.child(0).eofs == 1; }));
  const Answer answer = h.answer();
  EXPECT_EQ(answer.status(), 200);
  EXPECT_EQ(answer.header("Content-Type"), "text/event-stream");
  EXPECT_EQ(answer.body(), c1_events + kDone) << "nothing of the first child's stream, its role chunk included";
  EXPECT_EQ(h.result->child, "c1");
  EXPECT_TRUE(h.result->client_reusable);
  EXPECT_EQ(h.entry(0).state, ChildState::unhealthy);
  EXPECT_EQ(h.entry(0).failures, 1u);
  EXPECT_NE(h.entry(0).last_error.find("model overloaded"), std::string::npos) << h.entry(0).last_error;
  EXPECT_EQ(h.entry(1).state, ChildState::ready);
  EXPECT_EQ(h.entry(1).served, 1u);
}

TEST(RelayStream, FirstEventQuotaErrorCoolsTheChildAndIsRetried) {
  RelayHarness h(2, test_config());
  h.child(0).scripts.push_back(
      {emit(kSseHead + chunk("data: {\"error\": \"Auth rotation failed.\"}\n\n")), wait_for_eof()});
  const std::string c1_events = content_event("Hello", "chatcmpl-def5678-1700000000");
  h.child(1).scripts.push_back({emit(kSseHead + chunk(c1_events) + chunk(kDone) + kLastChunk)});

  h.start(true);
  ASSERT_TRUE(h.run_until([&] { return h.finished(); }));
  EXPECT_EQ(h.answer().status(), 200);
  EXPECT_EQ(h.answer().body(), c1_events + kDone);
  EXPECT_EQ(h.entry(0).state, ChildState::cooling);
  EXPECT_EQ(h.entry(0).quota_cooldowns, 1u);
  EXPECT_EQ(h.entry(0).failures, 0u);
  EXPECT_NEAR(seconds_until(h.entry(0).cooling_until), to_seconds(h.config.quota_cooldown), 0.5);
}

// ---------------------------------------------------------------------------
// 4. A stream broken after it started.

TEST(RelayStream, BrokenAfterItStartedEndsWithAnErrorEventThenDoneThenClose) {
  RelayHarness h(2, test_config());
  h.child(0).scripts.push_back({emit(kSseHead + chunk(content_event("Hello"))), close_connection()});

  h.start(true);
  ASSERT_TRUE(h.run_until([&] { return h.finished() && h.client().eof && h.child(0).cancels.size() == 1; }));
  const Answer answer = h.answer();
  EXPECT_EQ(answer.status(), 200);
  const auto events = events_of(answer.body());
  ASSERT_EQ(events.size(), 3u) << answer.body();
  EXPECT_EQ(events[0] + "\n\n", content_event("Hello"));
  const auto error = error_of(events[1]);
  ASSERT_TRUE(error.is_object()) << events[1];
  EXPECT_EQ(error.value("code", ""), "child_stream_aborted");
  EXPECT_EQ(error.value("type", ""), "upstream_error");
  EXPECT_NE(error.value("message", "").find("broke off"), std::string::npos) << events[1];
  EXPECT_EQ(events[2], "data: [DONE]");
  // The connection is not reused (the server closes it: the client saw EOF).
  EXPECT_FALSE(h.result->client_reusable);
  EXPECT_TRUE(h.client().eof);
  // Delivered bytes: no retry; the child is blamed, and its work cancelled.
  EXPECT_EQ(h.child(1).connections, 0);
  EXPECT_EQ(h.entry(0).state, ChildState::unhealthy);
  EXPECT_EQ(h.entry(0).failures, 1u);
  EXPECT_EQ(h.child(0).cancels, std::vector<std::string>{std::string(kReqId)});
}

// ---------------------------------------------------------------------------
// 5. Heartbeats while the child is silent.

TEST(RelayHeartbeat, SilentChildGetsAnSseHeadAndKeepAlivesBeforeItsEvents) {
  Config config = test_config();
  config.sse_heartbeat = 50ms;
  RelayHarness h(1, config);
  const std::string events = content_event("Hello") + content_event(" world");
  h.child(0).scripts.push_back({pause_for(250ms), emit(kSseHead + chunk(events) + chunk(kDone) + kLastChunk)});

  h.start(true);
  ASSERT_TRUE(h.run_until([&] { return h.finished(); }));
  const Answer answer = h.answer();
  EXPECT_EQ(h.client().received.rfind("HTTP/1.1 200 OK\r\n", 0), 0u);
  EXPECT_EQ(answer.status(), 200);
  EXPECT_EQ(answer.header("Content-Type"), "text/event-stream");
  EXPECT_EQ(answer.header("Cache-Control"), "no-cache");
  // The head and the first keep-alive reached the client before the child said anything.
  ASSERT_TRUE(h.client().first_byte && h.child(0).first_write);
  EXPECT_LT(*h.client().first_byte, *h.child(0).first_write);
  // Then only keep-alive comments until the child's events, relayed unchanged.
  const std::string& body = answer.body();
  const std::size_t first_data = body.find("data:");
  ASSERT_NE(first_data, std::string::npos) << body;
  const std::string before = body.substr(0, first_data);
  const std::string keep_alive = ": keep-alive\n\n";
  ASSERT_EQ(before.size() % keep_alive.size(), 0u) << before;
  EXPECT_GE(before.size() / keep_alive.size(), 2u) << before;
  for (std::size_t at = 0; at < before.size(); at += keep_alive.size()) {
    EXPECT_EQ(before.substr(at, keep_alive.size()), keep_alive);
  }
  EXPECT_EQ(body.substr(first_data), events + kDone);
  EXPECT_TRUE(h.result->client_reusable);
  EXPECT_EQ(h.entry(0).state, ChildState::ready);
  EXPECT_EQ(h.entry(0).served, 1u);
}

// ---------------------------------------------------------------------------
// 6. A client that goes away.

TEST(RelayClientGone, StreamClientLeavesTheChildConnectionIsClosedAndItsWorkCancelled) {
  Config config = test_config();
  config.sse_heartbeat = 50ms;  // the next heartbeat's write finds the client gone
  RelayHarness h(1, config);
  h.child(0).scripts.push_back({emit(kSseHead + chunk(content_event("Hello"))), wait_for_eof()});

  h.start(true);
  ASSERT_TRUE(h.run_until([&] { return h.client().received.find(kChunkId) != std::string::npos; }));
  EXPECT_EQ(h.forwards_done, 0);
  error_code ignored;
  h.client().socket.close(ignored);
  ASSERT_TRUE(h.run_until(
      [&] { return h.forwards_done == 1 && h.child(0).eofs == 1 && h.child(0).cancels.size() == 1; }, 1500ms));
  EXPECT_EQ(h.child(0).cancels, std::vector<std::string>{std::string(kReqId)});
  EXPECT_EQ(h.result->status, 200u);
  EXPECT_FALSE(h.result->client_reusable);
  // Leaving is not the child's fault; the relay's req_id entries are gone.
  EXPECT_EQ(h.entry(0).state, ChildState::ready);
  EXPECT_EQ(h.entry(0).failures, 0u);
  EXPECT_FALSE(h.registry.owner_of(std::string(kReqId)));
  EXPECT_FALSE(h.active.cancel(std::string(kReqId)));
}

TEST(RelayClientGone, NonStreamClientLeavesWhileTheChildThinksIsNoticedByTheClientWatch) {
  RelayHarness h(1, test_config());
  h.child(0).scripts.push_back({wait_for_eof()});  // never answers

  h.start(false);
  ASSERT_TRUE(h.run_until([&] { return h.child(0).targets.size() == 1; }));
  error_code ignored;
  h.client().socket.close(ignored);
  const auto left = Clock::now();
  // The client is watched once a request has waited RelayDeadlines::kClientWatchDelay (0.5 s).
  ASSERT_TRUE(h.run_until([&] { return h.forwards_done == 1 && h.child(0).eofs == 1; }, 1500ms));
  EXPECT_LT(Clock::now() - left, RelayDeadlines::kClientWatchDelay + 400ms);
  EXPECT_EQ(h.result->status, 0u) << "nothing was sent";
  EXPECT_TRUE(h.child(0).cancels.empty()) << "no req_id is known for a non-streamed answer";
  EXPECT_EQ(h.entry(0).state, ChildState::ready);
  EXPECT_EQ(h.entry(0).failures, 0u);
  EXPECT_EQ(h.entry(0).served, 0u);
}

// ---------------------------------------------------------------------------
// 7. ActiveRelays::cancel on a stream in progress.

TEST(RelayCancel, CancelEndsAStreamInProgressWithRequestCancelledThenDone) {
  RelayHarness h(1, test_config());
  h.child(0).scripts.push_back({emit(kSseHead + chunk(content_event("Hello"))), wait_for_eof()});

  h.start(true);
  ASSERT_TRUE(h.run_until([&] { return h.client().received.find(kChunkId) != std::string::npos; }));
  EXPECT_EQ(h.registry.owner_of(std::string(kReqId)), std::optional<std::size_t>(0));
  EXPECT_TRUE(h.active.cancel(std::string(kReqId)));
  ASSERT_TRUE(h.run_until([&] { return h.finished() && h.child(0).eofs == 1 && h.client().eof; }));
  const auto events = events_of(h.answer().body());
  ASSERT_EQ(events.size(), 3u) << h.answer().body();
  EXPECT_EQ(events[0] + "\n\n", content_event("Hello"));
  const auto error = error_of(events[1]);
  ASSERT_TRUE(error.is_object()) << events[1];
  EXPECT_EQ(error.value("code", ""), "request_cancelled");
  EXPECT_EQ(error.value("type", ""), "invalid_request_error");
  EXPECT_NE(error.value("message", "").find(kReqId), std::string::npos) << events[1];
  EXPECT_EQ(events[2], "data: [DONE]");
  EXPECT_FALSE(h.result->client_reusable);
  // The child's connection closed (that stops the real page); the route, not
  // the relay, sends the child its own cancel.
  EXPECT_EQ(h.child(0).eofs, 1);
  EXPECT_TRUE(h.child(0).cancels.empty());
  EXPECT_EQ(h.entry(0).state, ChildState::ready);
  EXPECT_FALSE(h.active.cancel(std::string(kReqId))) << "the relay is over";
}

// ---------------------------------------------------------------------------
// 8. Fleet-wide errors.

void expect_error(const Answer& answer, unsigned status, const std::string& code) {
  EXPECT_TRUE(answer.complete);
  EXPECT_EQ(answer.status(), status) << answer.body();
  EXPECT_EQ(answer.header("Content-Type"), "application/json");
  EXPECT_EQ(error_of(answer.body()).value("code", ""), code) << answer.body();
}

TEST(RelayFleet, EveryChildRefusingIs502AllChildrenFailed) {
  RelayHarness h(2, test_config());
  for (std::size_t i = 0; i < 2; ++i) {
    h.child(i).scripts.push_back({emit(json_answer(503, R"({"detail":"not ready"})")), wait_for_eof()});
  }
  h.start(false);
  ASSERT_TRUE(h.run_until([&] { return h.finished(); }));
  expect_error(h.answer(), 502, "all_children_failed");
  EXPECT_NE(error_of(h.answer().body()).value("message", "").find("answered 503"), std::string::npos);
  EXPECT_EQ(error_of(h.answer().body()).value("type", ""), "upstream_error");
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(h.child(i).targets.size(), 1u);
    EXPECT_EQ(h.entry(i).state, ChildState::unhealthy);
    EXPECT_EQ(h.entry(i).failures, 1u);
  }
}

TEST(RelayFleet, NoReadyChildIs503NoHealthyChildren) {
  RelayHarness h(2, test_config(), /*ready=*/false);
  h.start(false);
  ASSERT_TRUE(h.run_until([&] { return h.finished(); }));
  expect_error(h.answer(), 503, "no_healthy_children");
  EXPECT_EQ(h.child(0).connections + h.child(1).connections, 0);
  EXPECT_TRUE(h.result->client_reusable);
}

TEST(RelayFleet, EveryChildOutOfQuotaIs429QuotaExhaustedWithRetryAfter) {
  RelayHarness h(2, test_config());
  for (std::size_t i = 0; i < 2; ++i) {
    h.child(i).scripts.push_back({emit(json_answer(530, R"({"detail":"quota"})")), wait_for_eof()});
  }
  h.start(false);
  ASSERT_TRUE(h.run_until([&] { return h.finished(); }));
  expect_error(h.answer(), 429, "quota_exhausted");
  // The seconds until the first cooldown (--quota-cooldown 9) ends.
  const std::string retry_after = h.answer().header("Retry-After");
  ASSERT_FALSE(retry_after.empty());
  EXPECT_GE(std::stoi(retry_after), 8);
  EXPECT_LE(std::stoi(retry_after), 9);
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(h.entry(i).state, ChildState::cooling);
    EXPECT_EQ(h.entry(i).quota_cooldowns, 1u);
  }
}

TEST(RelayFleet, EveryChildRateLimitedIs429AllChildrenRateLimited) {
  RelayHarness h(2, test_config());
  for (std::size_t i = 0; i < 2; ++i) {
    h.child(i).scripts.push_back({emit(json_answer(429, R"({"detail":"slow down"})")), wait_for_eof()});
  }
  h.start(false);
  ASSERT_TRUE(h.run_until([&] { return h.finished(); }));
  expect_error(h.answer(), 429, "all_children_rate_limited");
  EXPECT_EQ(h.answer().header("Retry-After"), "5");
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(h.entry(i).state, ChildState::cooling);
    EXPECT_NEAR(seconds_until(h.entry(i).cooling_until), to_seconds(h.config.cooldown), 0.5);
  }
}

}  // namespace
