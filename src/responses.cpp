#include "coordinator/responses.hpp"

#include "coordinator/http_util.hpp"

namespace coordinator {

awaitable<bool> send_json(beast::tcp_stream& client, unsigned version, unsigned status, std::string body,
                          bool keep_alive, Clock::duration timeout, ExtraHeaders extra) {
  http::response<http::string_body> response{static_cast<http::status>(status), version};
  response.set(http::field::server, "coordinator");
  response.set(http::field::content_type, "application/json");
  for (const auto& [name, value] : extra) response.set(name, value);
  response.keep_alive(keep_alive);
  response.body() = std::move(body);
  response.prepare_payload();
  error_code ec;
  client.expires_after(timeout);
  co_await http::async_write(client, response, use_awaitable_ec(ec));
  co_return !ec;
}

awaitable<bool> send_text(beast::tcp_stream& client, unsigned version, unsigned status, std::string body,
                          std::string content_type, bool keep_alive, Clock::duration timeout) {
  http::response<http::string_body> response{static_cast<http::status>(status), version};
  response.set(http::field::server, "coordinator");
  response.set(http::field::content_type, content_type);
  response.set(http::field::cache_control, "no-store");
  response.keep_alive(keep_alive);
  response.body() = std::move(body);
  response.prepare_payload();
  error_code ec;
  client.expires_after(timeout);
  co_await http::async_write(client, response, use_awaitable_ec(ec));
  co_return !ec;
}

awaitable<bool> send_error(beast::tcp_stream& client, unsigned version, unsigned status, std::string message,
                           std::string type, std::string code, bool keep_alive, Clock::duration timeout,
                           ExtraHeaders extra) {
  co_return co_await send_json(client, version, status, error_body(message, type, code), keep_alive, timeout, extra);
}

}  // namespace coordinator
