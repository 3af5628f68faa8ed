#include "coordinator/responses.hpp"

#include "coordinator/field_lookup.hpp"
#include "coordinator/http_util.hpp"

namespace coordinator {

void add_request_id(ExtraHeaders& headers, const http::request<http::string_body>& request) {
  if (const std::string_view id = request_id_of(request); !id.empty()) headers.emplace_back(kRequestIdField, id);
}

namespace {

awaitable<bool> write_response(TcpStream& client, http::response<http::string_body>& response, Clock::duration timeout,
                               bool head_only) {
  error_code ec;
  client.expires_after(timeout);
  if (head_only) {
    http::response_serializer<http::string_body> serializer{response};
    co_await http::async_write_header(client, serializer, use_awaitable_ec(ec));
  } else {
    co_await http::async_write(client, response, use_awaitable_ec(ec));
  }
  co_return !ec;
}

}  // namespace

awaitable<bool> send_json(TcpStream& client, unsigned version, unsigned status, std::string body, bool keep_alive,
                          Clock::duration timeout, ExtraHeaders extra, bool head_only) {
  co_return co_await send_text(client, version, status, std::move(body), "application/json", keep_alive, timeout,
                               head_only, std::move(extra));
}

awaitable<bool> send_text(TcpStream& client, unsigned version, unsigned status, std::string body,
                          std::string content_type, bool keep_alive, Clock::duration timeout, bool head_only,
                          ExtraHeaders extra) {
  http::response<http::string_body> response{static_cast<http::status>(status), version};
  response.set(http::field::server, "coordinator");
  response.set(http::field::content_type, content_type);
  // The coordinator's answers describe the fleet now: never cache them.
  response.set(http::field::cache_control, "no-store");
  for (const auto& [name, value] : extra) response.set(name, value);
  response.keep_alive(keep_alive);
  response.body() = std::move(body);
  response.prepare_payload();
  co_return co_await write_response(client, response, timeout, head_only);
}

}  // namespace coordinator
