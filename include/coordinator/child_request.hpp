#pragma once

#include <array>
#include <string>
#include <string_view>

#include "coordinator/asio.hpp"

namespace coordinator {

// The request as a child gets it, serialized once per client request: the
// request line, the client's end-to-end fields (hop-by-hop ones, Host,
// Content-Length and Expect dropped), X-Forwarded-For with the client's
// address appended, the length, then Host for the child of each attempt.
// The body is sent from the client's request, never copied. No I/O.
class ChildRequest {
 public:
  // `client_address` empty: no X-Forwarded-For is added.
  ChildRequest(const http::request<http::string_body>& request, std::string_view client_address);

  // Addresses the request to one child (its Host field, last).
  void address_to(std::string_view host, int port);
  const std::string& head() const { return head_; }
  std::array<net::const_buffer, 2> buffers() const { return {net::buffer(head_), net::buffer(body_)}; }

 private:
  std::string head_;
  std::size_t fields_end_ = 0;  // the head's length without Host and the final CRLF
  std::string_view body_;
};

}  // namespace coordinator
