// floor_proxy: the smallest keep-alive reverse proxy on the coordinator's own stack (Boost 1.74
// Asio + Beast, C++20 coroutines, one io_context on one thread), to measure the CPU that stack
// costs per proxied request beside nginx (bench/notes.md, "The floor of Beast + Asio").
// A bench tool, not product code: no JSON check, no per-request logging, no metrics. What it keeps
// on purpose, because the coordinator has it too and a floor without it would flatter the stack:
// expires_after before every read and write, Beast's parsers on both sides, a pool of keep-alive
// connections per upstream, one nested coroutine per request, co_spawn with a logging handler.
//
//   floor_proxy --coordinator-port P [--coordinator-host 127.0.0.1] --upstream NAME=http://IP:PORT ...
//               [--executor any|typed] [--reuse-buffer] [--unsafe-io]    (other flags are ignored)
//
// --executor typed: io_context::executor_type instead of the type-erased any_io_executor for
// every socket, stream and awaitable. --reuse-buffer: the answer's read buffer lives with the pooled
// upstream connection instead of one per answer. --unsafe-io: BOOST_ASIO_CONCURRENCY_HINT_UNSAFE
// (no scheduler or reactor locking: one thread only). Each flag alone says what it is worth.

// Boost 1.74's awaitable.hpp uses std::exchange without including <utility>.
#include <utility>

#include <boost/asio.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <array>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <limits>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using error_code = boost::system::error_code;

namespace {

constexpr auto kIdleTimeout = std::chrono::seconds(60);  // a keep-alive client between requests
constexpr auto kIoTimeout = std::chrono::seconds(30);    // any one read or write on a busy connection
constexpr std::size_t kMaxRequestBody = std::size_t{1} << 20;
// The coordinator's attempt reserves this much: a typical answer's head and body in one read.
constexpr std::size_t kAnswerBufferBytes = std::size_t{16} * 1024;

struct Upstream {
  tcp::endpoint endpoint;
  std::string host;  // "127.0.0.1:PORT", the Host field sent to it
};

struct Options {
  std::string host = "127.0.0.1";
  unsigned short port = 0;
  std::vector<std::string> names;
  std::vector<Upstream> upstreams;
  bool typed_executor = false;
  bool reuse_buffer = false;
  bool unsafe_io = false;
};

// co_spawn's completion: say what escaped a coroutine instead of swallowing it (as `detached` would).
struct LogEscapedException {
  const char* what;
  void operator()(std::exception_ptr error) const {
    if (!error) return;
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "floor_proxy: %s: %s\n", what, e.what());
    }
  }
};

void append_number(std::string& out, std::size_t value) {
  std::array<char, 24> digits;
  const auto end = std::to_chars(digits.data(), digits.data() + digits.size(), value).ptr;
  out.append(digits.data(), end);
}

// Everything that depends on the executor type, so that both choices run the same code.
template <class Executor>
struct Proxy {
  using Token = net::use_awaitable_t<Executor>;
  template <class T = void>
  using Awaitable = net::awaitable<T, Executor>;
  using Socket = net::basic_stream_socket<tcp, Executor>;
  using Stream = beast::basic_stream<tcp, Executor, beast::unlimited_rate_policy>;
  using Request = http::request<http::string_body>;
  using Response = http::response<http::string_body>;

  static auto with_ec(error_code& ec) { return net::redirect_error(Token{}, ec); }

  struct Connection {
    explicit Connection(const Executor& executor) : stream(executor) {}
    Stream stream;
    beast::flat_buffer buffer;  // used only with --reuse-buffer
  };
  using Pooled = std::unique_ptr<Connection>;

  const Options& options;
  std::vector<std::vector<Pooled>> idle;  // per upstream: keep-alive connections not in use
  std::size_t next = 0;                   // round robin
  std::string health;                     // what bench/ab.py waits for before it measures

  explicit Proxy(const Options& o) : options(o), idle(o.upstreams.size()) {
    health = "{\"ready_children\":[";
    for (std::size_t i = 0; i < o.names.size(); ++i) health += (i ? ",\"" : "\"") + o.names[i] + "\"";
    health += "]}";
  }

  Pooled take(std::size_t index) {
    if (idle[index].empty()) return nullptr;
    Pooled connection = std::move(idle[index].back());
    idle[index].pop_back();
    return connection;
  }

  // One request to one upstream; no answer means 502. A pooled connection that fails before any
  // byte of an answer arrived (the upstream closed it while idle) is retried once on a fresh one.
  static Awaitable<std::optional<Response>> forward(Proxy* proxy, const Request& request, std::string& head) {
    const std::size_t index = proxy->next++ % proxy->options.upstreams.size();
    const Upstream& upstream = proxy->options.upstreams[index];
    // The head written by hand into a reused string, as the coordinator's ChildRequest does:
    // Beast's serializer was a fifth of the coordinator's instructions per request.
    head.clear();
    head += request.method_string();
    head += ' ';
    head += request.target();
    head += " HTTP/1.1\r\nHost: ";
    head += upstream.host;
    if (const auto type = request[http::field::content_type]; !type.empty()) {
      head += "\r\nContent-Type: ";
      head += type;
    }
    head += "\r\nContent-Length: ";
    append_number(head, request.body().size());
    head += "\r\n\r\n";
    const std::array<net::const_buffer, 2> out{net::buffer(head), net::buffer(request.body())};
    for (int attempt = 0; attempt < 2; ++attempt) {
      Pooled connection = attempt == 0 ? proxy->take(index) : nullptr;
      const bool pooled = connection != nullptr;
      error_code ec;
      if (!connection) {
        const Executor executor = co_await net::this_coro::executor;
        connection = std::make_unique<Connection>(executor);
        if (proxy->options.reuse_buffer) connection->buffer.reserve(kAnswerBufferBytes);
        connection->stream.expires_after(kIoTimeout);
        co_await connection->stream.async_connect(upstream.endpoint, with_ec(ec));
        if (ec) co_return std::nullopt;
        connection->stream.socket().set_option(tcp::no_delay(true), ec);
      }
      connection->stream.expires_after(kIoTimeout);
      co_await net::async_write(connection->stream, out, with_ec(ec));
      if (ec) {
        if (pooled) continue;
        co_return std::nullopt;
      }
      beast::flat_buffer fresh;  // the coordinator's way: one buffer per answer
      if (!proxy->options.reuse_buffer) fresh.reserve(kAnswerBufferBytes);
      beast::flat_buffer& buffer = proxy->options.reuse_buffer ? connection->buffer : fresh;
      http::response_parser<http::string_body> parser;
      // 1.74: body_limit(none) refuses every Content-Length (fixed in 1.75).
      parser.body_limit(std::numeric_limits<std::uint64_t>::max());
      connection->stream.expires_after(kIoTimeout);
      co_await http::async_read(connection->stream, buffer, parser, with_ec(ec));
      if (ec) {
        if (pooled && !parser.got_some()) continue;
        co_return std::nullopt;
      }
      // Bytes beyond the answer would be read as the next answer: such a connection is not reused.
      if (parser.keep_alive() && buffer.size() == 0) proxy->idle[index].push_back(std::move(connection));
      co_return parser.release();
    }
    co_return std::nullopt;
  }

  static Awaitable<> serve_client(Proxy* proxy, Socket socket) {
    error_code ec;
    socket.set_option(tcp::no_delay(true), ec);
    Stream client(std::move(socket));
    beast::flat_buffer buffer;  // per connection, as the coordinator's session has it
    std::string upstream_head;  // reused for every request on this connection
    std::string head;           // the answer's head, likewise
    while (true) {
      http::request_parser<http::string_body> parser;
      parser.body_limit(kMaxRequestBody);
      client.expires_after(kIdleTimeout);
      co_await http::async_read(client, buffer, parser, with_ec(ec));
      if (ec) break;
      const Request& request = parser.get();
      const bool keep_alive = request.keep_alive();
      std::optional<Response> answer;
      if (request.target() == "/health") {
        answer.emplace(http::status::ok, 11, proxy->health);
        answer->set(http::field::content_type, "application/json");
      } else {
        answer = co_await forward(proxy, request, upstream_head);
      }
      if (!answer) {
        answer.emplace(http::status::bad_gateway, 11, "{\"error\":\"upstream failed\"}");
        answer->set(http::field::content_type, "application/json");
      }
      head.clear();
      head += "HTTP/1.1 ";
      append_number(head, answer->result_int());
      head += ' ';
      head += answer->reason();
      if (const auto type = (*answer)[http::field::content_type]; !type.empty()) {
        head += "\r\nContent-Type: ";
        head += type;
      }
      head += "\r\nContent-Length: ";
      append_number(head, answer->body().size());
      head += keep_alive ? "\r\n\r\n" : "\r\nConnection: close\r\n\r\n";
      const std::array<net::const_buffer, 2> out{net::buffer(head), net::buffer(answer->body())};
      client.expires_after(kIoTimeout);
      co_await net::async_write(client, out, with_ec(ec));
      if (ec || !keep_alive) break;
    }
    client.socket().shutdown(tcp::socket::shutdown_send, ec);
    client.socket().close(ec);
  }

  static Awaitable<> accept_loop(Proxy* proxy, net::basic_socket_acceptor<tcp, Executor>* acceptor) {
    while (true) {
      error_code ec;
      Socket socket = co_await acceptor->async_accept(with_ec(ec));
      if (ec) {
        // Out of descriptors and the like: pause, keep serving the connections there are.
        std::fprintf(stderr, "floor_proxy: accept: %s\n", ec.message().c_str());
        net::basic_waitable_timer<std::chrono::steady_clock, net::wait_traits<std::chrono::steady_clock>, Executor>
            pause(acceptor->get_executor(), std::chrono::milliseconds(50));
        co_await pause.async_wait(with_ec(ec));
        continue;
      }
      net::co_spawn(acceptor->get_executor(), serve_client(proxy, std::move(socket)),
                    LogEscapedException{"client session"});
    }
  }

  static int run(net::io_context& io, const Options& options) {
    Proxy proxy(options);
    net::basic_socket_acceptor<tcp, Executor> acceptor(io);
    const tcp::endpoint endpoint(net::ip::make_address(options.host), options.port);
    acceptor.open(endpoint.protocol());
    acceptor.set_option(net::socket_base::reuse_address(true));
    acceptor.bind(endpoint);
    acceptor.listen(net::socket_base::max_listen_connections);
    net::co_spawn(io.get_executor(), accept_loop(&proxy, &acceptor), LogEscapedException{"accept loop"});
    net::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&io](const error_code&, int) { io.stop(); });
    io.run();
    return 0;
  }
};

// "http://127.0.0.1:PORT" (an IP address: this tool does not resolve names).
Upstream parse_upstream(const std::string& url) {
  const std::string scheme = "http://";
  const auto colon = url.rfind(':');
  if (url.compare(0, scheme.size(), scheme) != 0 || colon < scheme.size()) {
    throw std::runtime_error("--upstream wants NAME=http://IP:PORT, got " + url);
  }
  const std::string address = url.substr(scheme.size(), colon - scheme.size());
  const auto port = static_cast<unsigned short>(std::stoi(url.substr(colon + 1)));
  return {tcp::endpoint(net::ip::make_address(address), port), address + ":" + std::to_string(port)};
}

// The coordinator's flags that bench/ab.py and bench/perf/*.sh pass; others (with their value) are ignored.
Options parse_options(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    const bool has_value = i + 1 < argc && std::string_view(argv[i + 1]).substr(0, 2) != "--";
    const std::string value = has_value ? argv[i + 1] : "";
    if (flag == "--reuse-buffer") {
      options.reuse_buffer = true;
    } else if (flag == "--unsafe-io") {
      options.unsafe_io = true;
    } else if (has_value) {
      ++i;
      if (flag == "--coordinator-host" || flag == "--host") options.host = value;
      if (flag == "--coordinator-port" || flag == "--port")
        options.port = static_cast<unsigned short>(std::stoi(value));
      if (flag == "--executor") options.typed_executor = value == "typed";
      if (flag == "--upstream") {
        const auto equals = value.find('=');
        if (equals == std::string::npos) throw std::runtime_error("--upstream wants NAME=URL, got " + value);
        options.names.push_back(value.substr(0, equals));
        options.upstreams.push_back(parse_upstream(value.substr(equals + 1)));
      }
    }
  }
  if (options.port == 0 || options.upstreams.empty()) {
    throw std::runtime_error("usage: floor_proxy --coordinator-port P --upstream NAME=http://IP:PORT ...");
  }
  return options;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Options options = parse_options(argc, argv);
    net::io_context io(options.unsafe_io ? BOOST_ASIO_CONCURRENCY_HINT_UNSAFE : BOOST_ASIO_CONCURRENCY_HINT_DEFAULT);
    if (options.typed_executor) return Proxy<net::io_context::executor_type>::run(io, options);
    return Proxy<net::any_io_executor>::run(io, options);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "floor_proxy: %s\n", e.what());
    return 1;
  }
}
