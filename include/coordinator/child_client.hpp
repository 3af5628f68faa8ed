#pragma once

#include <string>

#include "coordinator/asio.hpp"
#include "coordinator/responses.hpp"

namespace coordinator {

// Sends POST /v1/cancel/{req_id} to one child with the client's credentials
// (`auth`: Authorization and X-API-Key, empty values left out); logs the outcome.
// Returns the child's status, 0 when it did not answer.
awaitable<unsigned> cancel_on_child(std::string child, std::string host, int port, std::string req_id,
                                    Clock::duration timeout, ExtraHeaders auth);

// The client's credentials, to be carried by the coordinator's own calls to a child.
ExtraHeaders credentials_of(const http::request<http::string_body>& request);

}  // namespace coordinator
