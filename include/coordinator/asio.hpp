#pragma once

// Boost 1.74's awaitable.hpp uses std::exchange without including <utility>.
#include <utility>

#include <boost/asio.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace coordinator {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = boost::asio::ip::tcp;
using error_code = boost::system::error_code;

// The one executor of the I/O thread, by its own type: the type-erased
// any_io_executor was copied, moved and queried on every completion (about
// 4% of a proxied request). Every socket, timer and coroutine uses it.
using Executor = net::io_context::executor_type;

template <class T = void>
using awaitable = net::awaitable<T, Executor>;
inline constexpr net::use_awaitable_t<Executor> use_awaitable{};

using Socket = net::basic_stream_socket<tcp, Executor>;
using Acceptor = net::basic_socket_acceptor<tcp, Executor>;
using Resolver = net::ip::basic_resolver<tcp, Executor>;
using SteadyTimer =
    net::basic_waitable_timer<std::chrono::steady_clock, net::wait_traits<std::chrono::steady_clock>, Executor>;
using TcpStream = beast::basic_stream<tcp, Executor, beast::unlimited_rate_policy>;

inline auto use_awaitable_ec(error_code& ec) {
  return net::redirect_error(use_awaitable, ec);
}

// co_spawn completion handler that logs what escaped a coroutine instead of
// swallowing it (as `detached` would).
struct LogEscapedException {
  const char* what;
  void operator()(std::exception_ptr error) const;
};

// Sets TCP_NODELAY: small SSE writes must leave at once.
void set_no_delay(Socket& socket);

}  // namespace coordinator
