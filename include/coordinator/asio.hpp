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

template <class T = void>
using awaitable = net::awaitable<T>;

inline auto use_awaitable_ec(error_code& ec) {
  return net::redirect_error(net::use_awaitable, ec);
}

// co_spawn completion handler that logs what escaped a coroutine instead of
// swallowing it (as `detached` would).
struct LogEscapedException {
  const char* what;
  void operator()(std::exception_ptr error) const;
};

// Sets TCP_NODELAY: small SSE writes must leave at once.
void set_no_delay(tcp::socket& socket);

}  // namespace coordinator
