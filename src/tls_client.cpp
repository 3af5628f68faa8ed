#include "coordinator/tls_client.hpp"

#include <openssl/ssl.h>

#include <boost/asio/ssl.hpp>
#include <boost/beast/ssl.hpp>

namespace coordinator {

std::shared_ptr<net::ssl::context> make_tls_client_context(std::string& error) {
  auto context = std::make_shared<net::ssl::context>(net::ssl::context::tls_client);
  error_code ec;
  context->set_default_verify_paths(ec);
  if (!ec) context->set_verify_mode(net::ssl::verify_peer, ec);
  if (ec) {
    error = "TLS: cannot load the system's CA certificates: " + ec.message();
    return nullptr;
  }
  return context;
}

awaitable<std::optional<SimpleResponse>> simple_tls_request(net::ssl::context& context, std::string host, int port,
                                                            http::verb method, std::string target, std::string body,
                                                            Clock::duration timeout, std::string& error,
                                                            std::vector<std::pair<std::string, std::string>> headers) {
  const auto deadline = Clock::now() + timeout;
  error_code ec;
  auto connection = co_await connect_to_child(host, port, timeout, ec);
  if (!connection) {
    error = "connect: " + ec.message();
    co_return std::nullopt;
  }
  beast::ssl_stream<TcpStream> stream(std::move(*connection), context);
  // SNI names a host, never an address (RFC 6066 3).
  error_code not_an_address;
  (void)net::ip::make_address(host, not_an_address);
  if (not_an_address && SSL_set_tlsext_host_name(stream.native_handle(), host.c_str()) != 1) {
    error = "TLS: cannot set the server name";
    co_return std::nullopt;
  }
  stream.set_verify_callback(net::ssl::host_name_verification(host), ec);
  beast::get_lowest_layer(stream).expires_at(deadline);
  co_await stream.async_handshake(net::ssl::stream_base::client, use_awaitable_ec(ec));
  if (ec) {
    error = "TLS handshake: " + ec.message();
    co_return std::nullopt;
  }
  auto request = simple_request_message(host, port, method, std::move(target), std::move(body), headers);
  std::optional<SimpleResponse> response = co_await exchange_simple_request(stream, std::move(request), error);
  // The answer is in: no wait for the peer's close_notify, which a server may never send.
  if (response) beast::get_lowest_layer(stream).socket().shutdown(Socket::shutdown_both, ec);
  co_return response;
}

}  // namespace coordinator
