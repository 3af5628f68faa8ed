#pragma once

#include <boost/beast/http/field.hpp>
#include <boost/beast/http/rfc7230.hpp>
#include <string_view>

#include "coordinator/http_util.hpp"

namespace coordinator {

// A field's value ("" when absent), found by one pass over the fields in
// their order. Beast's own lookup by name is a tree search with
// case-insensitive string compares: the dozen a request made were 4% of the
// proxy's instructions, where a pass over a request's few fields compares
// Beast's codes. The first of repeated fields is the one found.
template <class Fields>
std::string_view field_value(const Fields& fields, boost::beast::http::field name) {
  for (const auto& field : fields) {
    if (field.name() == name) return field.value();
  }
  return {};
}

template <class Fields>
bool has_field(const Fields& fields, boost::beast::http::field name) {
  for (const auto& field : fields) {
    if (field.name() == name) return true;
  }
  return false;
}

// The same for a name Beast has no code for (X-Request-Id, X-API-Key ...):
// only the fields Beast does not know are compared by name.
template <class Fields>
std::string_view unknown_field_value(const Fields& fields, std::string_view name) {
  for (const auto& field : fields) {
    if (field.name() == boost::beast::http::field::unknown && iequals(field.name_string(), name)) return field.value();
  }
  return {};
}

// Every request carries one once the server has read it (the client's, or a new one).
inline constexpr std::string_view kRequestIdField = "X-Request-Id";

template <class Fields>
std::string_view request_id_of(const Fields& request) {
  return unknown_field_value(request, kRequestIdField);
}

// Whether a message lets its connection carry another one, as Beast's
// keep_alive() decides it (RFC 9112 9.3), without its lookup.
template <class Header>
bool keeps_alive(const Header& header) {
  const std::string_view connection = field_value(header, boost::beast::http::field::connection);
  boost::beast::http::token_list tokens{connection};  // exists() is not const in Beast 1.74
  if (header.version() < 11) return tokens.exists("keep-alive");
  return !tokens.exists("close");
}

}  // namespace coordinator
