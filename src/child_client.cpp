#include "coordinator/child_client.hpp"

#include <spdlog/spdlog.h>

#include "coordinator/api_keys.hpp"
#include "coordinator/field_lookup.hpp"
#include "coordinator/http_util.hpp"
#include "coordinator/upstream.hpp"

namespace coordinator {

awaitable<unsigned> cancel_on_child(std::string child, std::string host, int port, std::string req_id,
                                    Clock::duration timeout, ExtraHeaders auth) {
  std::string error;
  auto response = co_await simple_request(host, port, http::verb::post, "/v1/cancel/" + req_id, "", timeout, error,
                                          std::move(auth));
  if (response) {
    spdlog::info("cancel {} on child {}: {}", req_id, child, response->status);
    co_return response->status;
  }
  spdlog::warn("cancel {} on child {} failed: {}", req_id, child, error);
  co_return 0;
}

awaitable<std::optional<SimpleResponse>> fetch_models(std::string host, int port, Clock::duration timeout,
                                                      std::string& error) {
  auto response = co_await simple_request(std::move(host), port, http::verb::get, "/v1/models", "", timeout, error);
  co_return response;
}

std::optional<std::string_view> request_key(const http::request<http::string_body>& request) {
  // The common places first: Gemini's are looked up only when neither holds a key.
  if (auto key =
          presented_key(field_value(request, http::field::authorization), unknown_field_value(request, "X-API-Key"))) {
    return key;
  }
  const std::string_view target = request.target();
  const std::string_view key_param =
      target.find('?') == std::string_view::npos ? std::string_view() : query_param(target, "key");
  return presented_key(KeyCarriers{{}, {}, unknown_field_value(request, "x-goog-api-key"), key_param});
}

ExtraHeaders credentials_of(const http::request<http::string_body>& request) {
  ExtraHeaders auth;
  if (const std::string_view value = field_value(request, http::field::authorization); !value.empty()) {
    auth.emplace_back("Authorization", value);
  }
  if (const std::string_view value = unknown_field_value(request, "X-API-Key"); !value.empty()) {
    auth.emplace_back("X-API-Key", value);
  }
  return auth;
}

}  // namespace coordinator
