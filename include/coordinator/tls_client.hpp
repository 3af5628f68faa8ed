#pragma once

// A small exchange over TLS (https:// webhooks): the system's CA store, the
// server's name checked against its certificate, every step bounded.

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "coordinator/asio.hpp"
#include "coordinator/upstream.hpp"

namespace boost::asio::ssl {
class context;
}  // namespace boost::asio::ssl

namespace coordinator {

// A client context that verifies peers against the system's CA store
// (OpenSSL's default paths: SSL_CERT_FILE and SSL_CERT_DIR are honoured);
// null, with `error` set, when it cannot be made.
std::shared_ptr<net::ssl::context> make_tls_client_context(std::string& error);

// simple_request over TLS: connect, handshake (SNI for a host name), the
// certificate checked for `host`, the request, the whole answer, all within `timeout`.
awaitable<std::optional<SimpleResponse>> simple_tls_request(net::ssl::context& context, std::string host, int port,
                                                            http::verb method, std::string target, std::string body,
                                                            Clock::duration timeout, std::string& error,
                                                            std::vector<std::pair<std::string, std::string>> headers);

}  // namespace coordinator
