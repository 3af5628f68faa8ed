#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "coordinator/asio.hpp"
#include "coordinator/registry.hpp"

namespace coordinator {

using ExtraHeaders = std::vector<std::pair<std::string, std::string>>;

// The request's X-Request-Id among a reply's headers.
void add_request_id(ExtraHeaders& headers, const http::request<http::string_body>& request);

// Writes one complete JSON response to a client; `head_only` (the answer to
// HEAD) sends its headers without the body. Returns false when the write failed.
awaitable<bool> send_json(TcpStream& client, unsigned version, unsigned status, std::string body, bool keep_alive,
                          Clock::duration timeout, ExtraHeaders extra = {}, bool head_only = false);

// Any other complete response (metrics text, the status page).
awaitable<bool> send_text(TcpStream& client, unsigned version, unsigned status, std::string body,
                          std::string content_type, bool keep_alive, Clock::duration timeout, bool head_only = false,
                          ExtraHeaders extra = {});

}  // namespace coordinator
