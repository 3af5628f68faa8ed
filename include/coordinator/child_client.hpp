#pragma once

#include <optional>
#include <string>

#include "coordinator/asio.hpp"
#include "coordinator/responses.hpp"
#include "coordinator/upstream.hpp"

namespace coordinator {

// Sends POST /v1/cancel/{req_id} to one child with the client's credentials
// (`auth`: Authorization and X-API-Key, empty values left out); logs the outcome.
// Returns the child's status, 0 when it did not answer.
awaitable<unsigned> cancel_on_child(std::string child, std::string host, int port, std::string req_id,
                                    Clock::duration timeout, ExtraHeaders auth);

// GET /v1/models of one child, bounded by `timeout`; nothing (and `error`)
// when it did not answer. No credentials: the real child never checks a key on
// /v1/models (api_utils/app.py APIKeyAuthMiddleware).
awaitable<std::optional<SimpleResponse>> fetch_models(std::string host, int port, Clock::duration timeout,
                                                      std::string& error);

// The API key `request` presents, in any of the places clients put it (presented_key).
std::optional<std::string_view> request_key(const http::request<http::string_body>& request);

// The client's credentials, to be carried by the coordinator's own calls to a child.
ExtraHeaders credentials_of(const http::request<http::string_body>& request);

}  // namespace coordinator
