#include "coordinator/child_request.hpp"

#include "coordinator/field_lookup.hpp"
#include "coordinator/http_util.hpp"

namespace coordinator {

namespace {

void add_field(std::string& out, std::string_view name, std::string_view value) {
  out += name;
  out += ": ";
  out += value;
  out += "\r\n";
}

}  // namespace

ChildRequest::ChildRequest(const http::request<http::string_body>& request, std::string_view client_address)
    : body_(request.body()) {
  // Written straight into a string: a copied request<string_body> and Beast's
  // serializer were a fifth of the proxy's instructions per request.
  head_.reserve(512);
  head_ += request.method_string();
  head_ += ' ';
  head_ += request.target();
  head_ += " HTTP/1.1\r\n";
  const std::string_view connection = field_value(request, http::field::connection);
  // "keep-alive" names only itself, which is hop-by-hop anyway.
  const bool connection_names_fields = !connection.empty() && !iequals(connection, "keep-alive");
  const bool forwarded_for = !client_address.empty();
  for (const auto& field : request) {
    const http::field code = field.name();
    const std::string_view name = field.name_string();
    // Known fields by Beast's code; only an unknown one can be X-Forwarded-For.
    if (is_hop_by_hop(code) || code == http::field::host || code == http::field::content_length ||
        code == http::field::expect || (connection_names_fields && connection_lists(connection, name)) ||
        (forwarded_for && code == http::field::unknown && iequals(name, "x-forwarded-for"))) {
      continue;
    }
    add_field(head_, name, field.value());
  }
  if (forwarded_for) {
    const std::string_view earlier = unknown_field_value(request, "X-Forwarded-For");
    if (earlier.empty()) {
      add_field(head_, "X-Forwarded-For", client_address);
    } else {
      add_field(head_, "X-Forwarded-For", std::string(earlier) + ", " + std::string(client_address));
    }
  }
  // As Beast's prepare_payload: a length unless the body is empty on a method
  // that does not expect one.
  const http::verb method = request.method();
  if (!body_.empty() || method == http::verb::options || method == http::verb::put || method == http::verb::post) {
    add_field(head_, "Content-Length", std::to_string(body_.size()));
  }
  fields_end_ = head_.size();
}

void ChildRequest::address_to(std::string_view host, int port) {
  head_.resize(fields_end_);
  head_ += "Host: ";
  head_ += host;
  head_ += ':';
  head_ += std::to_string(port);
  head_ += "\r\n\r\n";
}

}  // namespace coordinator
